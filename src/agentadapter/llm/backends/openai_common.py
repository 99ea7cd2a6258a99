"""What the OpenAI family's two wire formats share: chat completions and the Responses API.

:mod:`~agentadapter.llm.backends.openai_chat` and :mod:`~agentadapter.llm.backends.openai_responses`
reach the same providers the same way: the preset named by ``config.type`` (from
:mod:`~agentadapter.llm.backends.presets`) says how the key is sent, a missing key or base URL is
found when the backend is built (and raised by :meth:`~agentadapter.llm.backends.base.Backend.check_setup`
when a call is made), and OpenAI's reasoning models are told apart by one rule. Each backend keeps
its own URL layout and body mapping.
"""

from __future__ import annotations

from agentadapter.llm.backends import presets
from agentadapter.llm.backends.base import Backend, BackendConfig
from agentadapter.llm.errors import ConfigurationError

__all__ = ["REASONING_PREFIXES", "auth_headers", "chat_preset", "is_reasoning_model", "setup_problem"]

REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
"""Model-name prefixes of OpenAI's reasoning models, for deployments the catalog does not know."""


def chat_preset(config_type: str) -> presets.Preset:
    """The preset of a backend type; unknown types, and types of another wire format, behave like
    ``custom``."""
    try:
        preset = presets.get_preset(config_type)
    except ConfigurationError:
        return presets.PRESETS["custom"]
    return preset if preset.backend == "openai_chat" else presets.PRESETS["custom"]


def auth_headers(preset: presets.Preset, api_key: str | None) -> dict[str, str]:
    """The headers that carry ``api_key`` the way ``preset`` sends it (none without a key)."""
    headers = {"content-type": "application/json"}
    if api_key:
        if preset.auth == "api-key":
            headers["api-key"] = api_key
        elif preset.auth != "none":
            headers["authorization"] = f"Bearer {api_key}"
    return headers


def setup_problem(preset: presets.Preset, config: BackendConfig, base_url: str) -> str | None:
    """What keeps a backend of ``preset`` at ``base_url`` from working (no base URL, no key), or None."""
    if not base_url:
        env = " or ".join(preset.base_url_env) or "a base URL"
        if preset.name == "custom":
            return (
                f"backend {config.name!r} has no base_url; set base_url under backends: in "
                "agentadapter.yaml (e.g. http://localhost:8000/v1) or pass base_url=..."
            )
        return f"{env} is not set; export it or pass base_url=..."
    # A missing key only stops us on the way to the vendor's own host: a preset type pointed at
    # another URL (a proxy, a local server) may well need no key.
    if preset.key_required and not config.api_key and base_url == (preset.base_url or "").rstrip("/"):
        env = " or ".join(preset.api_key_env) or "the API key"
        return f"{env} is not set; export it or pass api_key=..."
    return None


def is_reasoning_model(backend: Backend, model: str) -> bool:
    """Whether ``model`` gets the reasoning-model settings: ``config.options["reasoning_model"]``
    when set, else the catalog, else (for a model the catalog does not know) its name."""
    forced = backend.config.options.get("reasoning_model")
    if forced is not None:
        return bool(forced)
    return backend.capabilities(model).reasoning or model.startswith(REASONING_PREFIXES)
