"""Model capabilities and prices: data (``catalog.json``), lookup, and cost arithmetic.

The catalog is data, not code: one JSON entry per known model with its context window, what it
supports and its prices in USD per million tokens. :func:`lookup` finds an entry by exact id,
alias, or a date-suffixed id (``gpt-4o-2024-08-06`` falls back to ``gpt-4o``); unknown models get
conservative defaults. :func:`cost_usd` applies DESIGN.md's formula to a normalized
:class:`~agentadapter.llm.messages.Usage`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields, replace
from functools import cache
from importlib import resources
from typing import Any

from agentadapter.llm.messages import Usage

_DATE_SUFFIX = re.compile(r"(-|@)(\d{4}-?\d{2}-?\d{2}|\d{4}|latest|\d{3})$")


@dataclass(slots=True, frozen=True)
class PriceTier:
    """Prices (USD per million tokens) that apply when the prompt exceeds ``above_input_tokens``."""

    above_input_tokens: int
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


@dataclass(slots=True, frozen=True)
class Pricing:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    tiers: tuple[PriceTier, ...] = ()
    source: str | None = None
    as_of: str | None = None

    def for_input(self, input_tokens: int) -> tuple[float, float, float, float]:
        """(input, output, cached input, cache write) prices for a prompt of this size."""
        price_in, price_out = self.input, self.output
        cached = self.cached_input if self.cached_input is not None else self.input
        write = self.cache_write if self.cache_write is not None else self.input
        for tier in sorted(self.tiers, key=lambda t: t.above_input_tokens):
            if input_tokens > tier.above_input_tokens:
                price_in, price_out = tier.input, tier.output
                cached = tier.cached_input if tier.cached_input is not None else tier.input
                write = tier.cache_write if tier.cache_write is not None else tier.input
        return price_in, price_out, cached, write


@dataclass(slots=True, frozen=True)
class Capabilities:
    """What a model can do. Unknown models get the conservative defaults below."""

    context_window: int = 8192
    max_output_tokens: int = 4096
    tools: bool = True
    parallel_tools: bool = True
    vision: bool = False
    json_schema: bool = False
    streaming: bool = True
    reasoning: bool = False
    prompt_caching: bool = False
    api: str = "chat"
    """Which API the model prefers: ``chat`` (chat completions), ``responses``, or the provider's native."""
    pricing: Pricing | None = None
    known: bool = False
    """False for the defaults given to a model the catalog does not know."""
    aliases: tuple[str, ...] = field(default=())


def _pricing(data: dict[str, Any] | None) -> Pricing | None:
    if not data:
        return None
    tiers = tuple(PriceTier(**tier) for tier in data.get("tiers", ()))
    return Pricing(**{**{k: v for k, v in data.items() if k != "tiers"}, "tiers": tiers})


_CAPABILITY_FIELDS = frozenset(f.name for f in fields(Capabilities))


def _entry(data: dict[str, Any]) -> Capabilities:
    values = {k: v for k, v in data.items() if k in _CAPABILITY_FIELDS}
    values["pricing"] = _pricing(data.get("pricing"))
    values["aliases"] = tuple(data.get("aliases", ()))
    values["known"] = True
    return Capabilities(**values)


@cache
def _catalog() -> dict[str, Capabilities]:
    raw = json.loads(resources.files("agentadapter.llm").joinpath("catalog.json").read_text("utf-8"))
    entries: dict[str, Capabilities] = {}
    for model_id, data in raw["models"].items():
        entry = _entry(data)
        entries[model_id] = entry
        provider = model_id.split("/", 1)[0]
        for alias in entry.aliases:
            entries.setdefault(alias if "/" in alias else f"{provider}/{alias}", entry)
    return entries


_overrides: dict[str, Capabilities] = {}


def override(model_id: str, **values: Any) -> Capabilities:
    """Override (or add) a catalog entry, e.g. from ``agentadapter.yaml``'s ``catalog:`` section."""
    base = lookup(model_id)
    if "pricing" in values and isinstance(values["pricing"], dict):
        values["pricing"] = _pricing(values["pricing"])
    entry = replace(base, known=True, **values)
    _overrides[model_id] = entry
    return entry


def lookup(model_id: str) -> Capabilities:
    """Capabilities for ``provider/model``; conservative defaults when the model is unknown."""
    found = find(model_id)
    return found if found is not None else Capabilities()


def find(model_id: str) -> Capabilities | None:
    """The catalog entry for ``provider/model``, or None."""
    if model_id in _overrides:
        return _overrides[model_id]
    catalog = _catalog()
    entry = catalog.get(model_id)
    if entry is not None:
        return entry
    stripped = _DATE_SUFFIX.sub("", model_id)
    if stripped != model_id:
        return catalog.get(stripped)
    return None


def known_models() -> dict[str, Capabilities]:
    """Every catalog entry by its canonical id (aliases excluded)."""
    return {k: v for k, v in _catalog().items() if k.split("/", 1)[1] not in v.aliases}


def cost_usd(usage: Usage, pricing: Pricing | None) -> float | None:
    """DESIGN.md's formula: uncached input, cached input, cache writes and output at their prices."""
    if pricing is None:
        return None
    price_in, price_out, price_cached, price_write = pricing.for_input(usage.input_tokens)
    uncached = max(0, usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens)
    total = (
        uncached * price_in
        + usage.cached_input_tokens * price_cached
        + usage.cache_write_tokens * price_write
        + usage.output_tokens * price_out
    )
    return round(total / 1_000_000, 10)
