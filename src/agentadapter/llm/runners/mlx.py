"""The MLX runner (the default): ``mlx-lm`` on Apple silicon (Metal) and on Linux (``mlx[cpu]``).

The model's thread loads the weights with ``mlx_lm.load`` and runs every generation with
``mlx_lm.stream_generate``; MLX streams are thread-local, so nothing of the model is touched from
any other thread. Sampling maps onto ``mlx_lm.sample_utils.make_sampler`` (temperature, top_p,
top_k, min_p) and ``make_logits_processors`` (repetition_penalty and the other penalties); seeds
go to ``mx.random.seed``. Runner options (``MLXRunner(**options)``, a LocalAgent's ``runner_kwargs``)
are ``mlx_lm.load``'s keyword arguments (``adapter_path``, ``tokenizer_config``, ``model_config``,
``lazy``, ``trust_remote_code``). ``device_config={"device": "cpu" | "gpu"}`` runs on a stream of
that device (the default is MLX's default device). The model's thread never exits
(:attr:`~agentadapter.llm.runners.base.Runner.thread_outlives_model`): unloading frees the weights on
it, and the process does not abort at exit when MLX's thread-local state is torn down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentadapter.llm.errors import ConfigurationError, InvalidRequestError
from agentadapter.llm.runners.base import GenerationConfig, Runner, RunnerFinish, TokenSink, engine_module

__all__ = ["MLXRunner"]

_LOAD_OPTIONS = frozenset({"adapter_path", "tokenizer_config", "model_config", "lazy", "trust_remote_code", "revision"})
_DEVICE_KEYS = frozenset({"device"})
_SAMPLER_OPTIONS = frozenset({"min_tokens_to_keep", "xtc_probability", "xtc_threshold", "xtc_special_tokens"})
_PROCESSOR_OPTIONS = frozenset({
    "logit_bias", "repetition_context_size", "presence_penalty", "presence_context_size", "frequency_penalty",
    "frequency_context_size",
})
_STEP_OPTIONS = frozenset({"max_kv_size", "prefill_step_size", "kv_bits", "kv_group_size", "quantized_kv_start"})


class MLXRunner(Runner):
    """A model run by ``mlx-lm`` on its own thread."""

    name = "mlx"
    install_hint = "pip install 'agentadapter[mlx]': mlx-lm, plus mlx[cpu] on Linux; from a clone: ./dev setup --local"
    # MLX's compile cache is thread-local and releases Python objects when its thread exits; that must
    # never happen while the interpreter shuts down (the process aborts), so the thread never exits.
    thread_outlives_model = True

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - _LOAD_OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"the mlx runner does not take option(s) {', '.join(unknown)}; it takes mlx_lm.load's "
                f"{', '.join(sorted(_LOAD_OPTIONS))}"
            )
        super().__init__(**options)
        self.model: Any = None
        self._stream: Any = None

    def load_model(self, model_path: str, device_config: Mapping[str, Any]) -> None:
        unknown = sorted(set(device_config) - _DEVICE_KEYS)
        if unknown:
            raise ConfigurationError(
                f"the mlx runner's device_config takes 'device' ('cpu' or 'gpu'), not {', '.join(unknown)}"
            )
        mx = engine_module("mlx.core")
        mlx_lm = engine_module("mlx_lm")

        device = device_config.get("device")
        if device is not None:
            kinds = {"cpu": mx.cpu, "gpu": mx.gpu}
            if device not in kinds:
                raise ConfigurationError(f"the mlx runner's device is 'cpu' or 'gpu', not {device!r}")
            # Created here, on the model's thread, which is the only one that will use it.
            self._stream = mx.new_stream(mx.Device(kinds[device]))
        self.model, self.tokenizer = mlx_lm.load(model_path, **self.options)

    def generate_tokens(self, prompt_ids: Sequence[int], config: GenerationConfig, sink: TokenSink) -> RunnerFinish:
        mx = engine_module("mlx.core")
        stream_generate = engine_module("mlx_lm").stream_generate
        sample_utils = engine_module("mlx_lm.sample_utils")

        extra = dict(config.extra)
        unknown = sorted(set(extra) - _SAMPLER_OPTIONS - _PROCESSOR_OPTIONS - _STEP_OPTIONS)
        if unknown:
            known = sorted(_SAMPLER_OPTIONS | _PROCESSOR_OPTIONS | _STEP_OPTIONS)
            raise InvalidRequestError(
                f"the mlx runner does not know generation option(s) {', '.join(unknown)}; besides temperature, "
                f"top_p, top_k, min_p, repetition_penalty, seed and stop it takes {', '.join(known)}"
            )
        if config.seed is not None:
            mx.random.seed(config.seed)
        sampler = sample_utils.make_sampler(
            temp=config.temperature or 0.0, top_p=config.top_p or 0.0, min_p=config.min_p or 0.0,
            top_k=config.top_k or 0, **{k: v for k, v in extra.items() if k in _SAMPLER_OPTIONS},
        )
        processors = sample_utils.make_logits_processors(
            repetition_penalty=config.repetition_penalty,
            **{k: v for k, v in extra.items() if k in _PROCESSOR_OPTIONS},
        )
        step_options = {k: v for k, v in extra.items() if k in _STEP_OPTIONS}
        if self._stream is not None:
            step_options["stream"] = self._stream
        counted = 0
        finish: RunnerFinish = "length"
        for response in stream_generate(
            self.model, self.tokenizer, mx.array(list(prompt_ids)), max_tokens=config.max_tokens,
            sampler=sampler, logits_processors=processors or None, **step_options,
        ):
            new_tokens, counted = response.generation_tokens - counted, response.generation_tokens
            if not sink.add(response.text, new_tokens):
                break
            if response.finish_reason == "stop":
                finish = "stop"
        return finish

    def unload_model(self) -> None:
        """Free the weights and MLX's buffer cache, here on the model's thread.

        The thread's streams stay: the thread is reused by the next MLX model, and MLX does not make a
        thread's default stream again once ``mx.clear_streams`` destroyed it."""
        self.model = None
        self._stream = None
        super().unload_model()
        try:
            mx = engine_module("mlx.core")
        except ImportError:  # never loaded: nothing of MLX to free
            return
        mx.synchronize()  # no work of this thread may still be queued on its streams
        mx.clear_cache()
