"""The runner interface: one in-process model, loaded once, generating on its own thread.

A :class:`Runner` holds one loaded model (MLX, transformers, the vLLM engine, or a plugin's). Its
public methods are the seeds' runner surface, made async so that the event loop never blocks:
:meth:`Runner.load` (``model_id``, ``device_config``), :meth:`Runner.generate` and
:meth:`Runner.stream` (a prompt string or chat messages, and a :class:`GenerationConfig`), and
:meth:`Runner.cleanup`. Every piece of work that touches the model runs on the model's own thread
(a single-worker executor created by ``load``): it loads the weights and then runs each generation
in turn. MLX needs this (its streams are thread-local); the other engines get a model whose state
no other thread touches. A generation pushes its text into a :class:`TokenSink` on that thread; the
sink applies the stop sequences, counts the tokens, watches the deadline and, when streaming, hands
the text to the waiting event loop with ``loop.call_soon_threadsafe``.

Some engines keep per-thread state whose destructor needs the interpreter: MLX's compile cache is
thread-local and releases Python objects when its thread exits. If that thread ends while the
interpreter is shutting down (a ``ThreadPoolExecutor`` worker is joined just before it), the
release finds no interpreter and the process aborts (``terminate called without an active
exception``, exit 134). A runner with :attr:`Runner.thread_outlives_model` set therefore runs on an
:class:`_OwnerThread` that never exits: ``cleanup`` (and, at interpreter exit, an ``atexit`` hook that
runs before the engine's own) unloads the model *on* that thread, then the thread waits, idle, for
the next runner of its kind to reuse it. At process exit it is stopped with the process, so the
engine's thread-exit destructors never run during shutdown.

A runner author implements three hooks that run on the model thread: :meth:`Runner.load_model`,
:meth:`Runner.generate_tokens` and, when the model has no Hugging Face style tokenizer,
:meth:`Runner.encode_prompt` (the default renders chat messages with the tokenizer's chat template,
:mod:`agentadapter.llm.runners.chat`). Runners are registered and shared by
:mod:`agentadapter.llm.runners.registry`; the adapter's ``LocalBackend`` wraps them.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import importlib
import json
import logging
import queue
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar

from agentadapter.llm.errors import (
    AgentAdapterError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    InvalidRequestError,
)

__all__ = [
    "ChatMessage",
    "Generation",
    "GenerationChunk",
    "GenerationConfig",
    "PromptInput",
    "Runner",
    "RunnerFinish",
    "TokenSink",
    "engine_module",
    "frozen_settings",
    "held_back",
]

ChatMessage: TypeAlias = Mapping[str, Any]
"""A chat message as chat templates take it: ``{"role": ..., "content": ..., "tool_calls": [...]}``."""
PromptInput: TypeAlias = str | Sequence[ChatMessage]
"""A raw prompt (sent as is, no chat template) or a conversation (rendered with the chat template)."""
RunnerFinish: TypeAlias = Literal["stop", "length"]

T = TypeVar("T")

_ALIASES = {"max_new_tokens": "max_tokens", "temp": "temperature", "stop_sequences": "stop"}


@dataclass(slots=True)
class GenerationConfig:
    """How to generate. None leaves a setting to the runner (and the model's own defaults)."""

    max_tokens: int = 512
    """Upper bound on generated tokens (``max_new_tokens`` is accepted as an alias)."""
    temperature: float | None = None
    """0 is greedy decoding; None: the runner's default (greedy for MLX, the model's generation config
    for transformers and vLLM)."""
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    """Stop sequences: the text ends before the first one found (it is not included)."""
    deadline: float | None = None
    """A ``time.monotonic()`` instant: generation stops there and raises ``APITimeoutError``."""
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra variables for the chat template (e.g. ``{"enable_thinking": False}``), as vLLM's server takes them."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Runner-specific options (e.g. MLX's ``max_kv_size``, transformers' ``no_repeat_ngram_size``,
    vLLM's ``presence_penalty``); a runner refuses the ones it does not know."""

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be a positive integer, not {self.max_tokens!r}")
        if self.temperature is not None and self.temperature < 0:
            raise InvalidRequestError(f"temperature must be 0 or more, not {self.temperature!r}")
        self.stop = [s for s in self.stop if s]

    @classmethod
    def of(cls, value: GenerationConfig | Mapping[str, Any] | None) -> GenerationConfig:
        """Accept a config, a dict (unknown keys go to ``extra``), or None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, GenerationConfig):
            return value
        if not isinstance(value, Mapping):
            raise InvalidRequestError(
                f"a generation config is a GenerationConfig or a dict, not {type(value).__name__}"
            )
        known = {f.name for f in fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = dict(value.get("extra") or {})
        for key, item in value.items():
            if key == "extra":
                continue
            name = _ALIASES.get(key, key)
            if name in known:
                values[name] = item
            else:
                extra[key] = item
        return cls(**values, extra=extra)


@dataclass(slots=True)
class Generation:
    """A finished generation: its text and what it cost in tokens."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    """Tokens the model generated, the end-of-sequence token and any past a stop sequence included."""
    finish_reason: RunnerFinish
    """``stop`` (end of sequence or a stop sequence) or ``length`` (``max_tokens`` reached)."""
    stop_sequence: str | None = None
    """The stop sequence that ended the text, when one did."""


@dataclass(slots=True)
class GenerationChunk:
    """One piece of a stream: new ``text``; the last chunk carries the whole ``generation``."""

    text: str = ""
    generation: Generation | None = None


class TokenSink:
    """Receives a generation's text on the model thread, piece by piece.

    It cuts the text at the first stop sequence (holding back a tail that might be the start of
    one), counts tokens, checks the deadline and a cancellation flag, and forwards released text to
    ``deliver`` (the streaming hand-off). A runner's loop calls :meth:`add` for every piece and stops
    as soon as it returns False.
    """

    __slots__ = ("_cancelled", "_deadline", "_deliver", "_parts", "_pending", "_stops", "completion_tokens",
                 "stop_sequence", "timed_out")

    def __init__(
        self, stop: Sequence[str] = (), *, deliver: Callable[[str], None] | None = None,
        deadline: float | None = None,
    ) -> None:
        self._stops = tuple(s for s in stop if s)
        self._deliver = deliver
        self._deadline = deadline
        self._parts: list[str] = []
        self._pending = ""
        self._cancelled = False
        self.completion_tokens = 0
        self.stop_sequence: str | None = None
        self.timed_out = False

    @property
    def done(self) -> bool:
        """Whether generation should stop: a stop sequence was found, or the caller is gone, or time is up."""
        return self.stop_sequence is not None or self._cancelled or self.timed_out

    def cancel(self) -> None:
        """Ask the generation to stop at its next token (called from the event loop's thread)."""
        self._cancelled = True

    def add(self, text: str, tokens: int = 1) -> bool:
        """Take ``text`` (worth ``tokens`` generated tokens); False when generation should stop."""
        self.completion_tokens += tokens
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.timed_out = True
        if self.stop_sequence is not None or not text:
            return not self.done
        if not self._stops:
            self._release(text)
            return not self.done
        buffer = self._pending + text
        found_at, found = -1, None
        for stop in self._stops:
            index = buffer.find(stop)
            if index != -1 and (found_at == -1 or index < found_at):
                found_at, found = index, stop
        if found is not None:
            self._pending = ""
            self._release(buffer[:found_at])
            self.stop_sequence = found
            return False
        held = held_back(buffer, self._stops)
        self._pending = buffer[len(buffer) - held :] if held else ""
        self._release(buffer[: len(buffer) - held])
        return not self.done

    def close(self) -> str:
        """Release what was held back (no stop sequence followed it) and return the whole text."""
        if self._pending:
            pending, self._pending = self._pending, ""
            self._release(pending)
        return "".join(self._parts)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def _release(self, text: str) -> None:
        if text:
            self._parts.append(text)
            if self._deliver is not None:
                self._deliver(text)


def held_back(text: str, markers: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that is the beginning of one of ``markers``."""
    longest = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), longest, -1):
            if text.endswith(marker[:size]):
                longest = size
                break
    return longest


_DONE = object()


class Runner(ABC):
    """One local model, loaded on and driven from its own thread.

    Subclasses implement :meth:`load_model` and :meth:`generate_tokens` (and :meth:`encode_prompt`
    when their tokenizer is not Hugging Face style). Constructor keyword arguments are the
    runner-specific options (``self.options``); ``device_config`` (given to :meth:`load`) says where
    and how the weights live (device, dtype, quantization, parallelism).
    """

    name: ClassVar[str] = ""
    """The registry name (``mlx``, ``transformers``, ``vllm``, ...)."""
    install_hint: ClassVar[str] = ""
    """How to install what the runner imports, shown when the import fails."""
    shared: ClassVar[bool] = True
    """Whether one loaded instance may serve every backend that asks for the same model and settings."""
    thread_outlives_model: ClassVar[bool] = False
    """Run on an owner thread that never exits (see the module docstring): for engines whose
    thread-exit destructors must not run while the interpreter shuts down (MLX)."""

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = dict(options)
        self.model_path: str | None = None
        self.device_config: dict[str, Any] = {}
        self.tokenizer: Any = None
        """A Hugging Face style tokenizer (``apply_chat_template``, ``encode``), set by ``load_model``."""
        self._executor: concurrent.futures.ThreadPoolExecutor | _OwnerThread | None = None
        self._loaded: concurrent.futures.Future[None] | None = None
        self._closed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("loaded" if self.loaded else "not loaded")
        return f"{type(self).__name__}(model_path={self.model_path!r}, {state})"

    @property
    def label(self) -> str:
        return self.name or type(self).__name__

    # ------------------------------------------------------------------ hooks (on the model thread)

    @abstractmethod
    def load_model(self, model_path: str, device_config: Mapping[str, Any]) -> None:
        """Load the weights and the tokenizer (set :attr:`tokenizer`)."""

    @abstractmethod
    def generate_tokens(self, prompt_ids: Sequence[int], config: GenerationConfig, sink: TokenSink) -> RunnerFinish:
        """Generate from ``prompt_ids``, passing each new piece of text to ``sink.add`` and stopping
        as soon as it returns False. Return ``stop`` (end of sequence) or ``length`` (max_tokens)."""

    def encode_prompt(
        self, prompt: PromptInput, tools: Sequence[Mapping[str, Any]] | None = None,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """The prompt's token ids: a string as is, a conversation through the chat template."""
        from agentadapter.llm.runners.chat import render_chat

        tokenizer = self.tokenizer
        if tokenizer is None:
            raise ConfigurationError(
                f"the {self.label} runner set no tokenizer in load_model(); set self.tokenizer there, "
                "or override encode_prompt()"
            )
        if isinstance(prompt, str):
            bos = getattr(tokenizer, "bos_token", None)
            add_special = not (isinstance(bos, str) and bos and prompt.startswith(bos))
            return list(tokenizer.encode(prompt, add_special_tokens=add_special))
        text = render_chat(tokenizer, prompt, tools, template_kwargs)
        return list(tokenizer.encode(text, add_special_tokens=False))

    def unload_model(self) -> None:
        """Drop the model's references so its memory can be freed."""
        self.tokenizer = None

    @classmethod
    def resolve_model(cls, name: str, search_paths: Sequence[Path] | None = None) -> str:
        """The directory to load for a model name (never downloads; see ``resolve_model_path``)."""
        from agentadapter.llm.runners.registry import resolve_model_path

        return resolve_model_path(name, search_paths)

    # --------------------------------------------------------------------------- the public surface

    @property
    def loaded(self) -> bool:
        loaded = self._loaded
        return loaded is not None and loaded.done() and loaded.exception() is None

    @property
    def closed(self) -> bool:
        return self._closed

    async def load(self, model_id: str, device_config: Mapping[str, Any] | None = None) -> None:
        """Load ``model_id`` (a directory) on the model's thread; loading again is a no-op."""
        config = dict(device_config or {})
        with self._lock:
            if self._closed:
                raise ConfigurationError(
                    f"the {self.label} runner for {self.model_path!r} was cleaned up; create another one"
                )
            if self._loaded is None:
                self.model_path, self.device_config = model_id, config
                if self.thread_outlives_model:
                    self._executor = _OwnerThread.acquire(f"agentadapter-{self.label}")
                else:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix=f"agentadapter-{self.label}"
                    )
                self._loaded = self._executor.submit(self._load_on_thread)
                if self.thread_outlives_model:
                    # Once loaded, so that the engine (imported by load_model) registered its atexit hooks first.
                    self._loaded.add_done_callback(lambda _: _unload_at_exit(self))
            elif (model_id, frozen_settings(config)) != (self.model_path, frozen_settings(self.device_config)):
                raise ConfigurationError(
                    f"this {self.label} runner already holds {self.model_path!r} (device_config "
                    f"{self.device_config}); a runner holds one model: create another for {model_id!r}"
                )
            loaded = self._loaded
        # shield: one caller giving up must not cancel the load the others wait for.
        await asyncio.shield(asyncio.wrap_future(loaded))

    async def generate(
        self, prompt: PromptInput, generation_config: GenerationConfig | Mapping[str, Any] | None = None,
        *, tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Generation:
        """The whole generation for ``prompt`` (chat messages are rendered with the chat template)."""
        config = GenerationConfig.of(generation_config)
        executor = await self._ready()
        sink = TokenSink(config.stop, deadline=config.deadline)
        future = executor.submit(self._generate_on_thread, prompt, tools, config, sink)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            sink.cancel()  # a generation already running stops at its next token
            raise

    async def stream(
        self, prompt: PromptInput, generation_config: GenerationConfig | Mapping[str, Any] | None = None,
        *, tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> AsyncGenerator[GenerationChunk, None]:
        """The generation as it happens: text chunks, then a last chunk carrying the :class:`Generation`."""
        config = GenerationConfig.of(generation_config)
        executor = await self._ready()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def hand_over(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                sink.cancel()

        sink = TokenSink(config.stop, deliver=hand_over, deadline=config.deadline)
        future = executor.submit(self._generate_on_thread, prompt, tools, config, sink)
        future.add_done_callback(lambda _: hand_over(_DONE))
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                yield GenerationChunk(text=item)
            yield GenerationChunk(generation=future.result())
        finally:
            if not future.done():
                sink.cancel()
                future.cancel()

    async def count_tokens(
        self, prompt: PromptInput, *, tools: Sequence[Mapping[str, Any]] | None = None,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> int:
        """How many tokens ``prompt`` is, as the model will see it."""
        executor = await self._ready()
        future = executor.submit(self._encode_on_thread, prompt, tools, template_kwargs)
        prompt_ids: list[int] = await asyncio.wrap_future(future)
        return len(prompt_ids)

    async def cleanup(self) -> None:
        """Unload the model and stop its thread; the runner cannot be used afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            executor = self._executor
        if executor is None:
            return
        try:
            await asyncio.wrap_future(executor.submit(self._unload_on_thread))
        finally:
            executor.shutdown(wait=False)

    # --------------------------------------------------------------------------------- internals

    async def _ready(self) -> concurrent.futures.ThreadPoolExecutor | _OwnerThread:
        with self._lock:
            executor, loaded, closed = self._executor, self._loaded, self._closed
        if closed:
            raise ConfigurationError(
                f"the {self.label} runner for {self.model_path!r} was cleaned up; load the model again"
            )
        if executor is None or loaded is None:
            raise ConfigurationError(f"the {self.label} runner has no model; call await runner.load(model_path) first")
        await asyncio.shield(asyncio.wrap_future(loaded))
        return executor

    def _load_on_thread(self) -> None:
        assert self.model_path is not None
        try:
            self.load_model(self.model_path, self.device_config)
        except AgentAdapterError:
            raise
        except ImportError as exc:
            hint = f" ({self.install_hint})" if self.install_hint else ""
            raise ConfigurationError(
                f"the {self.label} runner cannot start: {exc}; install what it needs{hint}"
            ) from exc
        except Exception as exc:
            raise ConfigurationError(
                f"the {self.label} runner could not load {self.model_path!r}: {type(exc).__name__}: {exc}; "
                "check that the directory holds the model's config.json, its weights (*.safetensors) and "
                "its tokenizer files, in a format this runner reads"
            ) from exc

    def _encode_on_thread(
        self, prompt: PromptInput, tools: Sequence[Mapping[str, Any]] | None,
        template_kwargs: Mapping[str, Any] | None,
    ) -> list[int]:
        try:
            return self.encode_prompt(prompt, tools, template_kwargs)
        except AgentAdapterError:
            raise
        except Exception as exc:
            raise InvalidRequestError(
                f"the {self.label} runner could not build the prompt for {self.model_path!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _generate_on_thread(
        self, prompt: PromptInput, tools: Sequence[Mapping[str, Any]] | None, config: GenerationConfig,
        sink: TokenSink,
    ) -> Generation:
        prompt_ids = self._encode_on_thread(prompt, tools, config.chat_template_kwargs)
        if sink.done:  # cancelled while queued behind another generation
            return Generation(sink.close(), len(prompt_ids), 0, "stop")
        try:
            finish = self.generate_tokens(prompt_ids, config, sink)
        except AgentAdapterError:
            raise
        except Exception as exc:
            raise APIError(
                f"the {self.label} runner failed while generating with {self.model_path!r}: "
                f"{type(exc).__name__}: {exc}",
                provider="local", model=self.model_path, retryable=False,
            ) from exc
        text = sink.close()
        if sink.timed_out:
            raise APITimeoutError(
                f"the {self.label} runner ran past the request's deadline after {sink.completion_tokens} tokens "
                f"({self.model_path!r}); raise the timeout or lower max_tokens",
                provider="local", model=self.model_path,
            )
        stop_sequence = sink.stop_sequence
        return Generation(
            text=text,
            prompt_tokens=len(prompt_ids),
            completion_tokens=sink.completion_tokens,
            finish_reason="stop" if stop_sequence is not None else finish,
            stop_sequence=stop_sequence,
        )

    def _unload_on_thread(self) -> None:
        self.unload_model()

    def _unload_at_exit(self) -> None:
        """Called at interpreter exit: unload on the model's thread, as ``cleanup`` does, and wait for it."""
        with self._lock:
            if self._closed or self._executor is None:
                return
            self._closed = True
            executor = self._executor
        try:
            executor.submit(self._unload_on_thread).result(timeout=_EXIT_UNLOAD_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            _logger.warning("the %s runner for %r did not unload within %.0f s of exit; leaving it to the process",
                            self.label, self.model_path, _EXIT_UNLOAD_TIMEOUT_S)
        except Exception as exc:  # exit goes on: report what the engine said, do not hide it
            _logger.warning("the %s runner for %r failed to unload at exit: %s: %s",
                            self.label, self.model_path, type(exc).__name__, exc)
        finally:
            executor.shutdown(wait=False)


# ------------------------------------------------------------------------------ the owner threads

_logger = logging.getLogger("agentadapter.runners")
_EXIT_UNLOAD_TIMEOUT_S = 30.0
"""How long interpreter exit waits for a model to unload on its thread (a generation still running
stops at its deadline or runs on; the process then ends with it)."""

_Job = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]


class _OwnerThread:
    """A model's thread that never exits: it runs submitted calls in order, one at a time.

    The subset of ``ThreadPoolExecutor(max_workers=1)`` the runner uses. ``shutdown`` hands the idle
    thread back to a pool that the next runner's :meth:`acquire` takes from, so the number of these
    threads is the most runners that were ever loaded at once, not the number ever loaded.
    """

    _idle: ClassVar[list[_OwnerThread]] = []
    _idle_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        # A daemon: interpreter exit does not join it (joining is what would end it during shutdown).
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    @classmethod
    def acquire(cls, name: str) -> _OwnerThread:
        with cls._idle_lock:
            if cls._idle:
                owner = cls._idle.pop()
                owner.thread.name = name
                return owner
        return cls(name)

    def submit(self, function: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((future, function, args))
        return future

    def shutdown(self, wait: bool = False) -> None:
        """Hand the thread back for reuse (it never exits). The next runner's work queues behind the
        work already submitted, so it may be handed back at once; ``wait`` waits for that work."""
        if wait:
            self.submit(lambda: None).result()
        with self._idle_lock:
            if self not in self._idle:
                self._idle.append(self)

    def _serve(self) -> None:
        while True:
            future, function, args = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = function(*args)
            except BaseException as exc:  # handed to whoever waits on the future, as an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)
            del future, function, args  # hold nothing of the last job while idle


_exit_runners: weakref.WeakSet[Runner] = weakref.WeakSet()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


def _unload_at_exit(runner: Runner) -> None:
    """Unload ``runner`` at interpreter exit, on its thread, before the engine tears itself down.

    atexit runs its hooks last-registered first; the hook is registered when the first such runner
    has loaded, after its engine registered its own hooks, so it runs before them.
    """
    global _exit_hook_registered
    with _exit_hook_lock:
        _exit_runners.add(runner)
        if not _exit_hook_registered:
            atexit.register(_unload_all_at_exit)
            _exit_hook_registered = True


def _unload_all_at_exit() -> None:
    for runner in list(_exit_runners):
        runner._unload_at_exit()


def engine_module(name: str) -> Any:
    """Import an inference engine's module (mlx, torch, transformers, vllm) on first use.

    Typed as ``Any`` on purpose: these libraries are optional, and whether they are installed (and
    typed) must not change what the type checker says about the runners.
    """
    return importlib.import_module(name)


def frozen_settings(value: Mapping[str, Any]) -> str:
    """A stable text form of a settings dict, for comparing and caching (the registry keys runners by it)."""
    return json.dumps(value, sort_keys=True, default=repr)
