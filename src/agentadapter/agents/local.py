"""``LocalAgent``: an ``LLMAgent`` bound to an in-process model runner (MLX, transformers, vLLM).

The seeds' local agent: a ``runner`` (``mlx`` by default), a model path or name, a device
configuration and a generation configuration. It binds the model id ``local/<runner>/<path>``, which
the adapter's local backend serves with the same ``Response`` shape as an online model, so the loop,
tools, handoffs and results are the same. A model name that is not a path is looked up in the
directories of ``LOCAL_MODEL_PATHS``. Generation settings the adapter knows (temperature,
max_tokens, ...) become model settings; the rest of ``generation_config`` and the
``device_config`` travel to the runner in the request's ``extra_body``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.agents.run_config import ModelSettings
from agentadapter.config import get_settings
from agentadapter.llm.errors import ConfigurationError

if TYPE_CHECKING:
    from agentadapter.agents.context import AgentContext
    from agentadapter.llm.client import LLM, ModelId

__all__ = ["LocalAgent", "find_local_model"]

# generation_config keys that are ModelSettings fields (the rest go to the runner as they are).
_SETTING_KEYS = frozenset({"temperature", "top_p", "max_tokens", "stop", "seed"})
_ALIASES = {"max_new_tokens": "max_tokens"}
KNOWN_RUNNERS = frozenset({"mlx", "transformers", "vllm"})


def find_local_model(name: str, search_paths: list[Path] | None = None) -> str:
    """A model path: ``name`` itself when it exists, else the first ``LOCAL_MODEL_PATHS`` entry holding it.

    A name found nowhere is returned unchanged (the runner may know it, e.g. from its own cache).
    """
    candidate = Path(name).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return str(candidate)
    paths = search_paths if search_paths is not None else list(get_settings().local_model_paths)
    for directory in paths:
        found = Path(directory).expanduser() / name
        if found.exists():
            return str(found)
    return name


@dataclass(eq=False, kw_only=True)
class LocalAgent(LLMAgent):
    """An LLMAgent bound to a model running in this process through a local runner."""

    agent_type: ClassVar[str] = "local"

    runner: str = "mlx"
    """The runner: mlx (default), transformers, vllm, or one registered by a plugin."""
    model_path: str = ""
    """A model directory, or a name looked up in LOCAL_MODEL_PATHS; defaults to ``model``."""
    device_config: dict[str, Any] = field(default_factory=dict)
    """Passed to the runner's ``load`` (device, dtype, quantization, ...)."""
    generation_config: dict[str, Any] = field(default_factory=dict)
    """Passed to the runner's ``generate``; known settings become model settings."""

    def __post_init__(self) -> None:
        if not self.model_path and isinstance(self.model, str) and self.model:
            if self.model.startswith("local/"):
                # local/<runner>/<path>, or local/<path> for the default runner.
                rest = self.model[len("local/") :]
                runner, sep, path = rest.partition("/")
                if sep and runner in KNOWN_RUNNERS:
                    self.runner, self.model_path = runner, path
                else:
                    self.model_path = rest
            else:
                self.model_path = self.model
        if not self.model_path:
            raise ConfigurationError(
                f"local agent {self.name!r} needs model_path= (a model directory, or a name found in "
                "LOCAL_MODEL_PATHS)"
            )
        if not self.runner or "/" in self.runner:
            raise ConfigurationError(f"local agent {self.name!r}: runner must be a runner name like 'mlx'")
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
        extra = dict(settings.extra_body)
        if runner_options:
            extra.setdefault("generation_config", runner_options)
        if self.device_config:
            extra.setdefault("device_config", dict(self.device_config))
        settings.extra_body = extra
        return settings

    @property
    def model_id(self) -> str:
        """``local/<runner>/<resolved path>``."""
        return f"local/{self.runner}/{find_local_model(self.model_path)}"

    def bind_model(self, context: AgentContext) -> tuple[LLM, ModelId]:
        return context.llm, self.model_id
