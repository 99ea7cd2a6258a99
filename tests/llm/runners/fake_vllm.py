"""A stand-in for the part of vLLM's offline API that the vLLM runner uses (vLLM cannot be installed here).

It mirrors that surface and its behaviour: ``LLM(model=..., **engine_args)`` refuses unknown engine
arguments; ``get_tokenizer()`` is the model's Hugging Face tokenizer; ``generate(prompts,
sampling_params, use_tqdm=...)`` takes strings or ``{"prompt_token_ids": [...]}`` and returns one
``RequestOutput`` per prompt, whose ``outputs[0]`` is a ``CompletionOutput`` (``text``, ``token_ids``,
``finish_reason`` ``stop``/``length``, ``stop_reason``). ``SamplingParams`` takes only the keyword
arguments the real one takes. Generation is deterministic (token ids chosen from the prompt, never a
special token); a stop string ends the text before it, as vLLM does. Every engine and request is
recorded for the tests to inspect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from transformers import AutoTokenizer

_ENGINE_ARGS = frozenset({
    "tokenizer", "tokenizer_mode", "trust_remote_code", "tensor_parallel_size", "dtype", "quantization",
    "revision", "seed", "gpu_memory_utilization", "swap_space", "cpu_offload_gb", "enforce_eager",
    "max_model_len", "max_num_seqs", "disable_custom_all_reduce", "enable_prefix_caching", "download_dir",
    "load_format",
})


@dataclass(kw_only=True)
class SamplingParams:
    n: int = 1
    best_of: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    detokenize: bool = True
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    logit_bias: dict[int, float] | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: Any = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = True


class LLM:
    instances: ClassVar[list[LLM]] = []

    def __init__(self, model: str, **engine_args: Any) -> None:
        unknown = sorted(set(engine_args) - _ENGINE_ARGS)
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got unexpected keyword argument(s) {unknown}")
        self.model = model
        self.engine_args = engine_args
        self.requests: list[tuple[list[int], SamplingParams]] = []
        self._tokenizer = AutoTokenizer.from_pretrained(engine_args.get("tokenizer") or model, local_files_only=True)
        LLM.instances.append(self)

    def _allowed_ids(self) -> list[int]:
        """Tokens that decode to printable ASCII on their own, so every prefix decodes to a prefix."""
        special = set(self._tokenizer.all_special_ids)
        return [
            i for i in range(len(self._tokenizer))
            if i not in special and (piece := self._tokenizer.decode([i])).isascii() and piece.isprintable()
        ]

    def get_tokenizer(self) -> Any:
        return self._tokenizer

    def generate(
        self, prompts: Any, sampling_params: SamplingParams | None = None, *, use_tqdm: bool = True,
        lora_request: Any = None,
    ) -> list[RequestOutput]:
        params = sampling_params or SamplingParams()
        items = prompts if isinstance(prompts, list) else [prompts]
        results = []
        for number, prompt in enumerate(items):
            ids = list(prompt["prompt_token_ids"]) if isinstance(prompt, dict) else self._tokenizer.encode(prompt)
            self.requests.append((ids, params))
            results.append(RequestOutput(str(number), None, ids, [self._complete(ids, params)]))
        return results

    def _complete(self, prompt_ids: list[int], params: SamplingParams) -> CompletionOutput:
        allowed = self._allowed_ids()
        stops = [params.stop] if isinstance(params.stop, str) else list(params.stop or [])
        token_ids: list[int] = []
        state = sum(prompt_ids) * 31 + len(prompt_ids)
        text = ""
        for step in range(params.max_tokens or 16):
            state = (state * 1103515245 + 12345 + step) % (2**31)
            token_ids.append(allowed[state % len(allowed)])
            text = self._tokenizer.decode(token_ids, skip_special_tokens=params.skip_special_tokens)
            for stop in stops:
                at = text.find(stop)
                if at != -1:
                    end = at + len(stop) if params.include_stop_str_in_output else at
                    return CompletionOutput(0, text[:end], token_ids, finish_reason="stop", stop_reason=stop)
        return CompletionOutput(0, text, token_ids, finish_reason="length", stop_reason=None)
