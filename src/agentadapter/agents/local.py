"""``LocalAgent``: an ``LLMAgent`` bound to an in-process model runner (MLX, transformers, vLLM).

The seeds' local agent: a ``model_id``, a ``runner`` (a name, ``mlx`` by default, or a Runner class)
and runner-specific keyword arguments, plus a device configuration and a generation configuration.
It calls the model id ``local/<runner>/<model>``, which the adapter's ``LocalBackend`` serves with the
same ``Response`` shape as an online model, so the loop, tools, handoffs and ``AgentResult`` are the
same as an ``OnlineAgent``'s. A model name that is not a path is looked up in ``LOCAL_MODEL_PATHS``.

How the settings travel: generation settings the adapter knows (temperature, max_tokens, top_p,
stop, seed) become model settings; the rest of ``generation_config`` (``top_k``,
``repetition_penalty``, ...) goes into ``extra_body``, whose keys are generation options for a local
runner just as they are body fields for an OpenAI-compatible server. Load-time settings (a runner
class, ``runner_kwargs``, ``device_config``) are not per request: an agent that has any gets its own
``LocalBackend`` with them, in a facade derived from the run's (same transport, retries, ledger,
cache, budgets, telemetry and config); loaded models are still shared process-wide.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.agents.run_config import ModelSettings
from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.runners.base import Runner
from agentadapter.llm.runners.registry import DEFAULT_RUNNER, find_model_path, is_runner_name

if TYPE_CHECKING:
    from agentadapter.agents.context import AgentContext
    from agentadapter.llm.backends.local import LocalBackend
    from agentadapter.llm.client import LLM, ModelId

__all__ = ["LocalAgent", "find_local_model"]

# generation_config keys that are ModelSettings fields (the rest go to the runner through extra_body).
_SETTING_KEYS = frozenset({"temperature", "top_p", "max_tokens", "stop", "seed"})
_ALIASES = {"max_new_tokens": "max_tokens"}


def find_local_model(name: str, search_paths: list[Path] | None = None) -> str:
    """A model path: ``name`` itself when it exists, else the first ``LOCAL_MODEL_PATHS`` entry holding it.

    A name found nowhere is returned unchanged (the local backend looks further, in the Hugging
    Face cache, and says where it looked when it cannot find it).
    """
    return find_model_path(name, search_paths) or name


@dataclass(eq=False, kw_only=True)
class LocalAgent(LLMAgent):
    """An LLMAgent bound to a model running in this process through a local runner."""

    agent_type: ClassVar[str] = "local"

    name: str = ""
    """The agent's name; defaults to the model directory's name."""
    model_id: str = ""
    """The model: a directory, a name found in LOCAL_MODEL_PATHS, or a ``local/<runner>/<model>`` id.
    After construction it is the full ``local/<runner>/<model>`` id the agent calls."""
    runner: str | type[Runner] | None = None
    """A runner name (mlx, the default; transformers; vllm; or a registered one) or a Runner class."""
    runner_kwargs: dict[str, Any] = field(default_factory=dict)
    """The runner's own options (e.g. mlx's ``adapter_path``, transformers' ``trust_remote_code``)."""
    model_path: str = ""
    """Another name for the model (the seeds' specs say ``model_path``); ``model_id`` wins."""
    device_config: dict[str, Any] = field(default_factory=dict)
    """Given to the runner's ``load`` (device, dtype, quantization, parallelism)."""
    generation_config: dict[str, Any] = field(default_factory=dict)
    """Generation settings: known ones become model settings, the rest go to the runner."""
    _bound: weakref.WeakKeyDictionary[LLM, tuple[tuple[Any, ...], LLM]] = field(
        default_factory=weakref.WeakKeyDictionary, init=False, repr=False
    )
    _bind_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        given = self.model_id or self.model_path or (self.model if isinstance(self.model, str) else "")
        if not given:
            raise ConfigurationError(
                f"local agent {self.name or '(unnamed)'!r} needs a model: model_id= (or model_path=), a model "
                "directory or a name found in LOCAL_MODEL_PATHS"
            )
        runner_in_id, path = _split_local_id(given, _runner_name(self.runner))
        if self.runner is None:
            self.runner = runner_in_id or DEFAULT_RUNNER
        elif runner_in_id is not None and runner_in_id != _runner_name(self.runner):
            raise ConfigurationError(
                f"local agent {self.name or path!r}: model {given!r} names runner {runner_in_id!r} but "
                f"runner={_runner_name(self.runner)!r}; give one of them"
            )
        runner_name = _runner_name(self.runner)
        if not runner_name or "/" in runner_name:
            raise ConfigurationError(
                f"local agent {self.name or path!r}: runner must be a runner name like 'mlx' or a Runner class"
            )
        if not path:
            raise ConfigurationError(f"local agent {self.name!r}: model {given!r} names no model after the runner")
        self.model_path = path
        self.model_id = f"local/{runner_name}/{find_local_model(path)}"
        self.model = self.model_id
        if not self.name:
            self.name = _slug(Path(path).name) or "local"
        self.model_settings = self._merged_settings(ModelSettings.of(self.model_settings))
        LLMAgent.__post_init__(self)

    def _merged_settings(self, settings: ModelSettings) -> ModelSettings:
        runner_options: dict[str, Any] = {}
        for key, value in self.generation_config.items():
            name = _ALIASES.get(key, key)
            if name in _SETTING_KEYS:
                if getattr(settings, name) is None:
                    setattr(settings, name, [value] if name == "stop" and isinstance(value, str) else value)
            else:
                runner_options[key] = value
        if runner_options:
            settings.extra_body = {**runner_options, **settings.extra_body}
        return settings

    def clone(self, **changes: Any) -> LocalAgent:
        """A copy with some fields changed; a new model (``model_id``, ``model_path`` or ``model``) or
        ``runner`` is bound afresh (``agent.clone(runner="transformers")`` runs the same model elsewhere)."""
        model_changes = changes.keys() & {"model_id", "model_path", "model"}
        if model_changes or "runner" in changes:
            reset: dict[str, Any] = {"model_id": "", "model_path": "", "model": None}
            if not model_changes:
                reset["model_path"] = self.model_path
            if "runner" not in changes:
                new_model = next((changes[k] for k in ("model_id", "model_path", "model") if changes.get(k)), "")
                names_runner = isinstance(new_model, str) and _split_local_id(new_model, "")[0] is not None
                reset["runner"] = None if names_runner else self.runner
            changes = {**reset, **changes}
        return dataclasses.replace(self, **changes)

    @property
    def needs_own_backend(self) -> bool:
        """Whether load-time settings (a runner class, runner_kwargs, device_config) need a backend of their own."""
        return not isinstance(self.runner, str) or bool(self.runner_kwargs) or bool(self.device_config)

    def bind_model(self, context: AgentContext) -> tuple[LLM, ModelId]:
        llm = context.llm
        if not self.needs_own_backend:
            return llm, self.model_id
        settings = (self.runner, _frozen(self.runner_kwargs), _frozen(self.device_config))
        with self._bind_lock:
            cached = self._bound.get(llm)
            # Rebuilt when the load-time settings changed since (the agent's fields were edited).
            if cached is None or cached[0] != settings:
                cached = self._bound[llm] = (settings, _derived_llm(llm, self._backend(llm)))
        return cached[1], self.model_id

    def _backend(self, llm: LLM) -> LocalBackend:
        from agentadapter.llm.backends.local import LocalBackend

        # The facade's own `local` settings (agentadapter.yaml) apply, with this agent's on top.
        config = llm.resolver.backend_config("local")
        return LocalBackend(
            config, transport=llm.transport, runner=self.runner, device_config=self.device_config,
            runner_kwargs=self.runner_kwargs,
        )


def _split_local_id(model: str, explicit_runner: str) -> tuple[str | None, str]:
    """``local/<runner>/<model>`` -> (runner, model); ``local/<model>`` and a bare model -> (None, model).

    ``<runner>`` is a registered runner's name, or the name of the runner the agent was given.
    """
    if not model.startswith("local/"):
        return None, model
    rest = model[len("local/") :]
    runner, sep, path = rest.partition("/")
    if sep and (is_runner_name(runner) or (explicit_runner and runner == explicit_runner)):
        return runner, path
    return None, rest


def _runner_name(runner: str | type[Runner] | None) -> str:
    if runner is None or isinstance(runner, str):
        return runner or ""
    if isinstance(runner, type) and issubclass(runner, Runner):
        return runner.name or runner.__name__
    raise ConfigurationError(f"runner must be a runner name like 'mlx' or a Runner subclass, not {runner!r}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:64]


def _frozen(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=repr)


def _derived_llm(parent: LLM, backend: LocalBackend) -> LLM:
    """A facade sharing everything with ``parent`` but whose ``local`` backend is ``backend``."""
    return parent.derive(backends={"local": backend})
