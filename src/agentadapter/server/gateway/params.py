"""Which request parameters each kind of target honours, and the operator's choice for the rest.

A client sends what its API documents (OpenAI's ``logit_bias``, ``service_tier``, ``frequency_penalty``
...); the model it names may be a route over targets that speak other formats. Each parameter is
either mapped (a neutral field every backend translates, like ``seed``, or a field passed on as it is
to the targets that take it, like ``logit_bias`` to chat-completions servers) or cannot be honoured by
some target of the route. For those, the operator chooses per route in ``agentadapter.yaml``
(``drop_params`` on the route, else ``gateway.drop_params``): refuse the request (400
``unsupported_parameter`` naming the parameter and the target) or drop the parameter and list it in the
``x-agentadapter-dropped-params`` header of the answer. A reasoning effort (``reasoning_effort``,
``reasoning.effort``, Anthropic's ``thinking``) is held to the same rule for targets the catalog knows
do not reason (OpenAI refuses it for them). A parameter is sent only when every target of
the route honours it, so a failover never changes what the request meant. A value that asks for
nothing (``frequency_penalty: 0``, ``n: 1``, ``store: false``, ``logprobs: false``) is no request at
all and is never refused.

The table (:data:`HONOURED`) is what docs/gateway.md prints per target kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentadapter.llm.backends.base import Backend
from agentadapter.llm.client import LLM
from agentadapter.llm.errors import AgentAdapterError
from agentadapter.server.errors import HTTPProblem

__all__ = [
    "DROPPED_HEADER", "HONOURED", "KINDS", "PASS_THROUGH", "ParamPlan", "is_default", "param_plan", "target_kind",
]

DROPPED_HEADER = "x-agentadapter-dropped-params"

KINDS = ("openai", "openai_compatible", "openai_responses", "anthropic", "gemini", "cohere", "local", "other")
"""Target kinds: OpenAI and Azure over chat completions; other chat-completions servers (Groq, Mistral,
vLLM, Ollama, ...); OpenAI's Responses API; Anthropic; Gemini; Cohere; in-process models; anything else
(a registered third-party backend), which gets the neutral request and so the neutral fields only."""

_CHAT = frozenset({"openai", "openai_compatible"})
_SAMPLING = frozenset({"openai", "openai_compatible", "gemini", "cohere", "other"})

HONOURED: dict[str, frozenset[str]] = {
    # neutral fields of the request, mapped by each backend that has the setting
    "seed": frozenset({"openai", "openai_compatible", "gemini", "cohere", "local", "other"}),
    "frequency_penalty": _SAMPLING,
    "presence_penalty": _SAMPLING,
    # passed on as they are, to the APIs that define them
    "logit_bias": _CHAT,
    "store": frozenset({"openai", "openai_responses"}),
    "service_tier": frozenset({"openai", "openai_responses"}),
    "safety_identifier": frozenset({"openai", "openai_responses"}),
    "prompt_cache_retention": frozenset({"openai", "openai_responses"}),
    "prompt_cache_options": frozenset({"openai"}),
    "prediction": frozenset({"openai"}),
    "verbosity": frozenset({"openai"}),
    "web_search_options": frozenset({"openai"}),
    # Anthropic's Messages API: passed on to Anthropic targets only
    "top_k": frozenset({"anthropic"}),
    "speed": frozenset({"anthropic"}),
    "inference_geo": frozenset({"anthropic"}),
    "container": frozenset({"anthropic"}),
    "diagnostics": frozenset({"anthropic"}),
    "user_profile_id": frozenset({"anthropic"}),
    # token log-probabilities: carried back from chat-completions servers, in a whole answer only
    "logprobs": _CHAT,
    "top_logprobs": _CHAT,
    "logprobs (not carried back)": frozenset(),
    # answers the gateway cannot carry back: one choice, text only
    "n": frozenset(),
    "modalities": frozenset(),
    "audio": frozenset(),
    "moderation": frozenset(),
}
"""Parameter -> the target kinds that honour it. Parameters every kind honours (messages, tools,
``temperature``, ``metadata``, ...) are not listed."""

PASS_THROUGH = frozenset({
    "logprobs", "top_logprobs", "logit_bias", "store", "service_tier", "safety_identifier", "prompt_cache_retention",
    "prompt_cache_options", "prediction", "verbosity", "web_search_options", "top_k", "speed", "inference_geo",
    "container", "diagnostics", "user_profile_id",
})
"""The listed parameters sent in the provider's body as the client wrote them (``Request.extra_body``)."""


def target_kind(backend: Backend) -> str:
    """The :data:`KINDS` entry of a backend."""
    type_name = backend.type_name
    if type_name == "openai_chat":
        preset = getattr(backend, "preset", None)
        return "openai" if getattr(preset, "name", None) in ("openai", "azure") else "openai_compatible"
    if type_name in ("openai_responses", "anthropic", "gemini", "cohere", "local"):
        return type_name
    return "other"


@dataclass(slots=True)
class ParamPlan:
    """What one call may send: its targets (label, kind), the operator's rule, and what was dropped."""

    model: str
    targets: tuple[tuple[str, str], ...]
    drop: bool
    dropped: list[str] = field(default_factory=list)
    not_reasoning: tuple[str, ...] = ()
    """Targets the catalog knows and says do not reason: a reasoning effort is an error there."""

    def allows_reasoning(self, param: str) -> bool:
        """Whether to send a reasoning effort (``param`` is how this format spells it); as :meth:`allows`."""
        if not self.not_reasoning:
            return True
        if self.drop:
            if param not in self.dropped:
                self.dropped.append(param)
            return False
        label = self.not_reasoning[0]
        raise HTTPProblem(
            400, f"{param} asks for reasoning, which {label} (a target of {self.model!r}) does not do; remove "
                 f"{param}, use a reasoning model, or ask the operator to set drop_params for this model",
            code="unsupported_parameter", param=param, details={"target": label})

    def allows(self, param: str, entry: str | None = None) -> bool:
        """Whether to send ``param``; False when it is dropped; a 400 when the route refuses it. ``entry``: the
        :data:`HONOURED` row to read, when it is not the parameter's own (``logprobs (not carried back)``: in a
        stream, or from the Responses API)."""
        kinds = HONOURED.get(entry or param)
        if kinds is None:
            return True
        refusing = next(((label, kind) for label, kind in self.targets if kind not in kinds), None)
        if refusing is None:
            return True
        if self.drop:
            if param not in self.dropped:
                self.dropped.append(param)
            return False
        label, kind = refusing
        raise HTTPProblem(
            400, f"{param} is not supported by {label} ({_KIND_NAMES[kind]}), a target of {self.model!r}; "
                 f"remove {param} from the request, or ask the operator to set drop_params for this model "
                 "(the gateway then drops it and names it in the x-agentadapter-dropped-params header)",
            code="unsupported_parameter", param=param, details={"target": label, "target_kind": kind})

    def headers(self) -> dict[str, str]:
        return {DROPPED_HEADER: ", ".join(self.dropped)} if self.dropped else {}


_KIND_NAMES = {
    "openai": "OpenAI chat completions", "openai_compatible": "an OpenAI-compatible chat server",
    "openai_responses": "OpenAI's Responses API", "anthropic": "Anthropic's Messages API", "gemini": "Gemini",
    "cohere": "Cohere", "local": "an in-process model", "other": "a backend that takes the neutral request only",
}


def _targets(llm: LLM, model: str) -> Iterable[tuple[str, str]]:
    resolver = llm.resolver
    for model_id in resolver.model_ids(model):
        provider = model_id.split("/", 1)[0]
        try:
            kind = target_kind(resolver.backend(provider))
        except AgentAdapterError:
            kind = "other"  # a backend that cannot be built fails the call itself, with its own error
        yield model_id, kind


def param_plan(llm: LLM, model: str) -> ParamPlan:
    """The plan for a call to ``model`` (checked already: a known id, alias or route)."""
    spec = llm.file_config.models.get(model)
    route_rule = getattr(spec, "drop_params", None)
    drop = route_rule if isinstance(route_rule, bool) else llm.file_config.gateway.drop_params
    targets = tuple(_targets(llm, model))
    not_reasoning = tuple(label for label, _ in targets if _known_not_reasoning(llm, label))
    return ParamPlan(model, targets, drop, not_reasoning=not_reasoning)


def _known_not_reasoning(llm: LLM, model_id: str) -> bool:
    found = llm.catalog.find(model_id)
    return found is not None and found.known and not found.reasoning


def is_default(param: str, value: Any) -> bool:
    """Whether ``value`` asks for nothing (so no target needs to honour it)."""
    if value is None or (param == "service_tier" and value == "default"):
        return True
    return _DEFAULTS.get(param, _NO_DEFAULT) == value or (param in _EMPTY_OK and not value)


_NO_DEFAULT = object()
_DEFAULTS: dict[str, Any] = {
    "frequency_penalty": 0, "presence_penalty": 0, "n": 1, "store": False, "logprobs": False, "top_logprobs": 0,
    "service_tier": "auto", "modalities": ["text"], "speed": "standard",
}
_EMPTY_OK = frozenset({"logit_bias", "audio", "prediction", "prompt_cache_options"})
