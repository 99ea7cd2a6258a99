"""The transformers runner: Hugging Face ``transformers`` on PyTorch (CPU by default; CUDA or MPS).

The model's thread loads the tokenizer and the model (``local_files_only``: nothing is downloaded)
and runs ``model.generate`` with a text streamer: a ``transformers.TextStreamer`` whose finalized
text goes to the generation's sink, which applies stop sequences and, when streaming, hands the text
to the event loop. A stopping criterion ends generation as soon as the sink says so (a stop
sequence, a cancelled stream, the deadline). End-of-sequence tokens are counted but not decoded
into the text. ``temperature=0`` is greedy; None keeps the model's own generation config.

``device_config``: ``device`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``; default ``cpu``), ``dtype``
(``auto``, ``float32``, ``bfloat16``, ``float16``), ``threads`` (torch's CPU threads). Runner options
(a LocalAgent's ``runner_kwargs``) go to ``from_pretrained`` (``trust_remote_code``, ``attn_implementation``,
``device_map``, ...). Install PyTorch for CPU first (``pip install torch==2.13.0``), then
``pip install 'agentadapter[transformers]'``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.runners.base import GenerationConfig, Runner, RunnerFinish, TokenSink, engine_module

__all__ = ["TransformersRunner"]

_DEVICE_KEYS = frozenset({"device", "dtype", "threads"})


class TransformersRunner(Runner):
    """A model run by ``transformers`` (PyTorch) on its own thread."""

    name = "transformers"
    install_hint = ("pip install torch==2.13.0, then pip install 'agentadapter[transformers]'; "
                    "from a clone: ./dev setup --local")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.model: Any = None
        self.device = "cpu"
        self._eos_ids: frozenset[int] = frozenset()

    def load_model(self, model_path: str, device_config: Mapping[str, Any]) -> None:
        unknown = sorted(set(device_config) - _DEVICE_KEYS)
        if unknown:
            raise ConfigurationError(
                f"the transformers runner's device_config takes {', '.join(sorted(_DEVICE_KEYS))}, "
                f"not {', '.join(unknown)}"
            )
        torch = engine_module("torch")
        hf = engine_module("transformers")

        threads = device_config.get("threads")
        if threads is not None:
            torch.set_num_threads(int(threads))
        options: dict[str, Any] = {"local_files_only": True, **self.options}
        dtype = device_config.get("dtype")
        if dtype is not None:
            options[_dtype_keyword(hf.__version__)] = dtype if dtype == "auto" else _torch_dtype(torch, dtype)
        tokenizer = hf.AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        model = hf.AutoModelForCausalLM.from_pretrained(model_path, **options)
        self.device = str(device_config.get("device") or "cpu")
        if "device_map" not in options:
            model = model.to(self.device)
        model.eval()
        self.model, self.tokenizer = model, tokenizer
        self._eos_ids = frozenset(_eos_ids(model, tokenizer))

    def generate_tokens(self, prompt_ids: Sequence[int], config: GenerationConfig, sink: TokenSink) -> RunnerFinish:
        torch = engine_module("torch")

        input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=self.device)
        settings: dict[str, Any] = {
            "max_new_tokens": config.max_tokens,
            "streamer": _SinkStreamer(self.tokenizer, sink, self._eos_ids),
            "stopping_criteria": _stop_when_done(sink),
            "attention_mask": torch.ones_like(input_ids),
        }
        pad = self.tokenizer.pad_token_id
        settings["pad_token_id"] = pad if pad is not None else next(iter(sorted(self._eos_ids)), None)
        if config.temperature is not None:
            settings["do_sample"] = config.temperature > 0
            if config.temperature > 0:
                settings["temperature"] = config.temperature
        sampling = settings.get("do_sample", bool(getattr(self.model.generation_config, "do_sample", False)))
        if sampling:
            for name in ("top_p", "top_k", "min_p"):
                value = getattr(config, name)
                if value is not None:
                    settings[name] = value
        if config.repetition_penalty is not None:
            settings["repetition_penalty"] = config.repetition_penalty
        if config.seed is not None:
            torch.manual_seed(config.seed)
        settings.update(config.extra)
        with torch.inference_mode():
            output = self.model.generate(input_ids=input_ids, **settings)
        new_tokens = output[0, len(prompt_ids) :].tolist()
        return "stop" if new_tokens and new_tokens[-1] in self._eos_ids else "length"

    def unload_model(self) -> None:
        self.model = None
        super().unload_model()
        import gc

        gc.collect()


def _dtype_keyword(version: str) -> str:
    """``dtype`` since transformers 4.56 (``torch_dtype`` before)."""
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return "dtype"
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _torch_dtype(torch: Any, name: Any) -> Any:
    value = getattr(torch, str(name), None)
    if not isinstance(value, torch.dtype):
        raise ConfigurationError(f"the transformers runner's dtype is auto, float32, bfloat16 or float16, not {name!r}")
    return value


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(v for v in value if isinstance(v, int))
    return ids


class _SinkStreamer:
    """A ``transformers.TextStreamer`` feeding a :class:`TokenSink`.

    The text streamer decodes (whole words at a time, as it does for printing); this wrapper skips
    the prompt, counts every generated token into the sink and keeps end-of-sequence tokens out of
    the decoded text.
    """

    def __init__(self, tokenizer: Any, sink: TokenSink, eos_ids: frozenset[int]) -> None:
        self._text = engine_module("transformers").TextStreamer(tokenizer, skip_special_tokens=False)
        self._text.on_finalized_text = lambda text, stream_end=False: sink.add(text, 0)
        self._sink = sink
        self._eos_ids = eos_ids
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() hands the streamer the prompt first
            self._prompt_seen = True
            return
        flat = value.reshape(-1)
        self._sink.add("", int(flat.numel()))
        kept = flat[[int(token) not in self._eos_ids for token in flat.tolist()]]
        if kept.numel():
            self._text.put(kept)

    def end(self) -> None:
        self._text.end()


def _stop_when_done(sink: TokenSink) -> Any:
    """Stopping criteria that end generation as soon as the sink says so."""
    torch = engine_module("torch")

    def sink_done(input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        return torch.full((input_ids.shape[0],), sink.done, dtype=torch.bool, device=input_ids.device)

    return engine_module("transformers").StoppingCriteriaList([sink_done])
