"""The vLLM runner: vLLM's offline engine (``vllm.LLM``) in this process, for machines with a GPU.

The model's thread builds ``vllm.LLM(model=<directory>, **engine_args)`` and runs each generation
with ``LLM.generate`` on the prompt's token ids and a ``SamplingParams``. The offline engine returns
a generation whole, so a stream from this runner arrives as one piece. Stop sequences are given to
vLLM (it stops there and drops them); special tokens are kept in the text (``skip_special_tokens``
is False) so tool-call markers such as ``[TOOL_CALLS]`` survive for the parser.

``device_config`` and runner options are both engine arguments of ``vllm.LLM`` (``dtype``,
``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``, ``quantization``,
``enforce_eager``, ...); generation options beyond the common ones (``presence_penalty``,
``frequency_penalty``, ``min_tokens``, ...) are ``SamplingParams`` fields. This is not the vLLM
*server*: for that, use the ``vllm/<model>`` provider (OpenAI-compatible HTTP).
"""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from typing import Any

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.runners.base import GenerationConfig, Runner, RunnerFinish, TokenSink, engine_module

__all__ = ["VLLMRunner"]


class VLLMRunner(Runner):
    """A model run by vLLM's offline engine on its own thread."""

    name = "vllm"
    install_hint = "pip install 'agentadapter[vllm]' on a machine with a supported GPU"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.engine: Any = None

    def load_model(self, model_path: str, device_config: Mapping[str, Any]) -> None:
        vllm = engine_module("vllm")

        engine_args = {**device_config, **self.options}
        self.engine = vllm.LLM(model=model_path, **engine_args)
        self.tokenizer = self.engine.get_tokenizer()

    def generate_tokens(self, prompt_ids: Sequence[int], config: GenerationConfig, sink: TokenSink) -> RunnerFinish:
        vllm = engine_module("vllm")

        params: dict[str, Any] = {"n": 1, "max_tokens": config.max_tokens, "skip_special_tokens": False}
        for name in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed"):
            value = getattr(config, name)
            if value is not None:
                params[name] = value
        if config.stop:
            params["stop"] = list(config.stop)
        params.update(config.extra)
        try:
            sampling = vllm.SamplingParams(**params)
        except TypeError as exc:
            raise InvalidRequestError(
                f"the vllm runner cannot use generation option(s) {', '.join(sorted(config.extra)) or '(none)'}: "
                f"{exc}; extra options must be vllm.SamplingParams fields"
            ) from exc
        outputs = self.engine.generate([{"prompt_token_ids": list(prompt_ids)}], sampling, use_tqdm=False)
        completion = outputs[0].outputs[0]
        sink.add(completion.text, len(completion.token_ids))
        stop_reason = getattr(completion, "stop_reason", None)
        if isinstance(stop_reason, str) and stop_reason in config.stop and sink.stop_sequence is None:
            sink.stop_sequence = stop_reason  # vLLM stopped there and left it out of the text
        return "length" if completion.finish_reason == "length" else "stop"

    def unload_model(self) -> None:
        self.engine = None
        super().unload_model()
        gc.collect()
        try:
            torch = engine_module("torch")
        except ImportError:
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
