"""Test doubles for local models: a scripted runner, and a tiny real model built on the fly.

:class:`ScriptedRunner` answers from a script (strings, or a function of the prompt) through the
real runner machinery (its own thread, the token sink, stop sequences, streaming), with no model
and no weights; it records every prompt and tool list it was given. Tool calling is tested with it,
one script per chat-template format. :func:`build_tiny_model` writes a Llama-architecture model with
random weights and a byte-level BPE tokenizer trained on the spot into a directory that both
``mlx-lm`` and ``transformers`` load, so the real runners run end to end in seconds without
downloading anything. It needs ``numpy``, ``tokenizers`` and ``safetensors`` (installed with either
runner's extra).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.runners.base import (
    GenerationConfig,
    PromptInput,
    Runner,
    RunnerFinish,
    TokenSink,
    engine_module,
)
from agentadapter.llm.runners.chat import render_chat

__all__ = ["TINY_CHAT_TEMPLATE", "ScriptedCall", "ScriptedRunner", "build_tiny_model"]

Script = Sequence[str] | Callable[["ScriptedCall"], str]

_PIECES = re.compile(r"\s*\S+|\s+")


@dataclass(slots=True)
class ScriptedCall:
    """What a scripted runner was asked: the prompt, the tools, the rendered text, the settings."""

    prompt: PromptInput
    tools: list[dict[str, Any]] = field(default_factory=list)
    rendered: str = ""
    config: GenerationConfig | None = None


class _PlainTokenizer:
    """What the chat renderer needs from a tokenizer, with no chat template (a plain transcript)."""

    chat_template = None


class ScriptedRunner(Runner):
    """Answers from ``script``: a list of outputs used in order, or a function of the :class:`ScriptedCall`.

    Each output is streamed word by word (one word = one token); ``max_tokens`` and stop sequences
    apply as for a real model. Prompt tokens are the words of the rendered prompt. Not shared
    between backends: each holds its own script.
    """

    name = "scripted"
    shared = False

    def __init__(self, script: Script = (), **options: Any) -> None:
        super().__init__(**options)
        self._script: Iterator[str] | Callable[[ScriptedCall], str] = (
            script if callable(script) else iter(list(script))
        )
        self.calls: list[ScriptedCall] = []

    @classmethod
    def resolve_model(cls, name: str, search_paths: Sequence[Path] | None = None) -> str:
        return name  # there are no weights to find

    def load_model(self, model_path: str, device_config: Mapping[str, Any]) -> None:
        self.tokenizer = _PlainTokenizer()

    def encode_prompt(
        self, prompt: PromptInput, tools: Sequence[Mapping[str, Any]] | None = None,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> list[int]:
        rendered = prompt if isinstance(prompt, str) else render_chat(self.tokenizer, prompt, tools, template_kwargs)
        self.calls.append(ScriptedCall(prompt=prompt, tools=[dict(t) for t in tools or ()], rendered=rendered))
        return list(range(max(1, len(rendered.split()))))

    def generate_tokens(self, prompt_ids: Sequence[int], config: GenerationConfig, sink: TokenSink) -> RunnerFinish:
        call = self.calls[-1]
        call.config = config
        if callable(self._script):
            text = self._script(call)
        else:
            try:
                text = next(self._script)
            except StopIteration:
                raise InvalidRequestError(
                    f"the scripted runner has no output left for generation {len(self.calls)}; give it more"
                ) from None
        for count, piece in enumerate(_PIECES.findall(text), start=1):
            if not sink.add(piece):
                return "stop"
            if count >= config.max_tokens:
                return "length"
        sink.add("", 1)  # the end-of-sequence token
        return "stop"


# ------------------------------------------------------------------------------------ a tiny model

TINY_CHAT_TEMPLATE = (
    "{% if tools %}<s>system\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}</s>\n{% endif %}"
    "{% for message in messages %}<s>{{ message['role'] }}\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)
"""A minimal chat template: one ``<s>role\\ntext</s>`` block per turn, the tools as JSON lines."""

_CORPUS = (
    "the quick brown fox jumps over the lazy dog while a local model answers in the same shape as an online one "
    "agents call tools to read the weather in paris and the time at noon then write a short report in json "
    "every token of the stream arrives in order and the usage counts the prompt and the generated tokens "
    "structured output is an object with a name a value and a list of items that must match the schema "
    "small models run on a laptop cpu with mlx or transformers and larger ones on a gpu with vllm "
    "the user asks a question the assistant thinks for a moment and gives an answer that is true or false "
)


def build_tiny_model(
    directory: str | Path, *, hidden_size: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2,
    intermediate_size: int = 64, vocab_size: int = 320, seed: int = 0, chat_template: str = TINY_CHAT_TEMPLATE,
) -> Path:
    """Write a random-weight Llama model and a freshly trained tokenizer to ``directory``.

    The files are the Hugging Face layout (``config.json``, ``model.safetensors``, ``tokenizer.json``,
    ``tokenizer_config.json`` with the chat template) that ``mlx_lm.load`` and ``transformers``
    both read. Deterministic for a given ``seed``.
    """
    np = engine_module("numpy")
    save_file = engine_module("safetensors.numpy").save_file
    tokenizers = engine_module("tokenizers")
    Tokenizer, decoders, models = tokenizers.Tokenizer, tokenizers.decoders, tokenizers.models
    pre_tokenizers, trainers = tokenizers.pre_tokenizers, tokenizers.trainers

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    words = _CORPUS.split()
    lines = [" ".join(words[i:] + words[:i]) for i in range(0, len(words), 7)]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<pad>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(lines, trainer)
    tokenizer.save(str(target / "tokenizer.json"))
    (target / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>", "model_max_length": 2048, "clean_up_tokenization_spaces": False,
        "chat_template": chat_template,
    }, indent=2))
    vocab = tokenizer.get_vocab_size()
    head_dim = hidden_size // heads
    (target / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden_size,
        "intermediate_size": intermediate_size, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "head_dim": head_dim, "vocab_size": vocab,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2,
        "torch_dtype": "float32",
    }, indent=2))
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    tensors: dict[str, Any] = {
        "model.embed_tokens.weight": weight(vocab, hidden_size),
        "model.norm.weight": np.ones(hidden_size, np.float32),
        "lm_head.weight": weight(vocab, hidden_size),
    }
    for layer in range(layers):
        prefix = f"model.layers.{layer}."
        tensors.update({
            prefix + "self_attn.q_proj.weight": weight(heads * head_dim, hidden_size),
            prefix + "self_attn.k_proj.weight": weight(kv_heads * head_dim, hidden_size),
            prefix + "self_attn.v_proj.weight": weight(kv_heads * head_dim, hidden_size),
            prefix + "self_attn.o_proj.weight": weight(hidden_size, heads * head_dim),
            prefix + "mlp.gate_proj.weight": weight(intermediate_size, hidden_size),
            prefix + "mlp.up_proj.weight": weight(intermediate_size, hidden_size),
            prefix + "mlp.down_proj.weight": weight(hidden_size, intermediate_size),
            prefix + "input_layernorm.weight": np.ones(hidden_size, np.float32),
            prefix + "post_attention_layernorm.weight": np.ones(hidden_size, np.float32),
        })
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target
