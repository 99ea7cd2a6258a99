"""Model capabilities and prices: data (``catalog.json``), lookup, overrides and cost arithmetic.

The catalog is data, not code: one JSON entry per known model with its context window, what it
supports, which API it prefers and its prices in USD per million tokens, each price naming its
source and date. Its neighbours: the backends ask :func:`find` / :func:`lookup` what a model can do
(sync, no network); :mod:`agentadapter.llm.detect` asks a running server instead; the facade prices
every answer with :func:`cost_usd`; :mod:`agentadapter.llm.tokens` uses the same prices before a
call.

How :func:`find` resolves ``provider/model`` (first match wins; user overrides beat the data at
every step):

1. the exact id, or an alias of an entry (``anthropic/claude-sonnet-4-5-20250929``);
2. the id without a date or version suffix (``openai/gpt-4o-2024-08-06`` → ``openai/gpt-4o``,
   ``xai/grok-4-0709``, ``gemini/gemini-2.0-flash-001``, ``...@20250929``);
3. the id in lower case;
4. resellers of a vendor's own model: ``openrouter/<vendor>/<model>`` maps to the vendor's entry
   (``openrouter/anthropic/claude-sonnet-4.5`` → ``anthropic/claude-sonnet-4-5``; dots become
   dashes where the vendor spells versions with dashes). OpenRouter bills the upstream list price,
   so the prices carry over; ``:free`` variants cost nothing; ``api`` becomes ``chat`` because
   OpenRouter speaks chat completions. ``azure/<deployment>`` maps to ``openai/<deployment>`` when
   the deployment is named after the model (Azure's Global deployments bill OpenAI's list price;
   Data Zone and Regional deployments cost more, so treat those prices as a floor).
   ``bedrock/[us.|eu.|apac.|global.]anthropic.<claude>-v1:0`` and ``vertex/<claude>@<date>`` map to
   Anthropic's entry, ``vertex/gemini-...`` to the Gemini API's: the clouds bill the vendor's list
   price on their global endpoints (regional ones of Claude 4.5 and later cost 10% more: a floor).
   A ``bedrock/<model>`` entry of its own wins, with the geography and ``-v1:0`` stripped.

Hosts that run open weights under their own names and prices (Groq, Together, Fireworks, vLLM,
Ollama, LM Studio, a named ``backends:`` entry) are *not* mapped: the same weights have other
limits and prices there. Such a model is either in the catalog under its host (``groq/...``),
detected from its server (:mod:`agentadapter.llm.detect`), overridden, or unknown. An unknown model
gets conservative defaults (``known=False``) and one warning per model on the
``agentadapter.catalog`` logger.

Embedding models have a section of their own (``embedding_models``): :class:`EmbeddingModel` (output
dimensions, the most tokens one input may have, the price per million input tokens, sourced and dated
as the chat prices are), found by :func:`embedding_model` (exact id or alias, any case;
``azure/<deployment>`` and ``openrouter/openai/<model>`` map to OpenAI's entry as for chat).

Overrides come at two scopes. :func:`override` changes the process-wide catalog (code and tests).
A config file's ``catalog:`` section is scoped to the facade built from it: :class:`CatalogView` lays
those entries over the process-wide catalog for that ``LLM`` (and the facades derived from it)
only, so two facades with different files, say two tenants' gateways, never see each other's prices.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.messages import Usage

logger = logging.getLogger("agentadapter.catalog")

# A trailing date or version stamp: -2024-08-06, -20250929, @20250929, -0709, -001, -latest.
_DATE_SUFFIX = re.compile(r"(-|@)(\d{4}-?\d{2}-?\d{2}|\d{4}|latest|\d{3})$")

API_KINDS: frozenset[str] = frozenset({"chat", "responses", "anthropic", "gemini", "cohere", "test"})
"""Values of :attr:`Capabilities.api`."""


# ------------------------------------------------------------------------------------------ prices


@dataclass(slots=True, frozen=True)
class PriceTier:
    """Prices (USD per million tokens) that apply when the prompt exceeds ``above_input_tokens``.

    "The prompt" is every input token, cached ones and cache writes included: that is how
    Anthropic, Gemini, OpenAI and xAI decide which tier a request falls in, and it is what
    :attr:`Usage.input_tokens <agentadapter.llm.messages.Usage.input_tokens>` holds. A tier prices
    the whole request, output included.
    """

    above_input_tokens: int
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


@dataclass(slots=True, frozen=True)
class Pricing:
    """USD per million tokens, with the tiers that apply to long prompts.

    ``cached_input`` and ``cache_write`` default to the input price when a provider publishes
    none, which over- rather than under-states a cost.
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    """Writes to the prompt cache (Anthropic's 5-minute writes; OpenAI's GPT-5.6 family)."""
    tiers: tuple[PriceTier, ...] = ()
    source: str | None = None
    as_of: str | None = None
    note: str | None = None
    """A caveat worth reading before trusting the number (promotional price, unpublished part...)."""
    batch: float | None = None
    """The fraction of these prices a call through the provider's batch API pays (0.5: half); None: the
    provider publishes no batch price for this model."""
    batch_source: str | None = None
    """Where the batch price is published."""

    def __post_init__(self) -> None:
        # Sorted once here so the per-response arithmetic never sorts.
        if len(self.tiers) > 1:
            object.__setattr__(self, "tiers", tuple(sorted(self.tiers, key=lambda t: t.above_input_tokens)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "pricing") -> Pricing:
        """Build from the JSON shape of ``catalog.json`` and the ``catalog:`` config section."""
        unknown = set(data) - _PRICING_FIELDS
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown price field(s) {', '.join(sorted(unknown))}; "
                f"use {', '.join(sorted(_PRICING_FIELDS))} (USD per million tokens)"
            )
        if "input" not in data or "output" not in data:
            raise ConfigurationError(f"{where}: a price needs both 'input' and 'output' (USD per million tokens)")
        tiers: list[PriceTier] = []
        for raw in data.get("tiers") or ():
            if isinstance(raw, PriceTier):
                tiers.append(raw)
                continue
            unknown_tier = set(raw) - _TIER_FIELDS
            if unknown_tier or "above_input_tokens" not in raw:
                raise ConfigurationError(
                    f"{where}: a tier takes above_input_tokens, input, output, cached_input, cache_write "
                    f"(got {', '.join(sorted(raw))})"
                )
            tiers.append(PriceTier(**raw))
        values = {k: v for k, v in data.items() if k != "tiers"}
        for name in ("input", "output", "cached_input", "cache_write"):
            _check_price(values.get(name), f"{where}: {name}")
        batch = values.get("batch")
        if batch is not None and (not isinstance(batch, int | float) or isinstance(batch, bool) or not 0 < batch <= 1):
            raise ConfigurationError(f"{where}: batch is the fraction of the price a batch call pays (0 < batch <= 1), "
                                     f"got {batch!r}")
        for tier in tiers:
            for name in ("input", "output", "cached_input", "cache_write"):
                _check_price(getattr(tier, name), f"{where}: tier above {tier.above_input_tokens} tokens, {name}")
        return cls(**values, tiers=tuple(tiers))

    def for_input(self, input_tokens: int) -> tuple[float, float, float, float]:
        """(input, output, cached input, cache write) prices for a prompt of this size."""
        price_in, price_out = self.input, self.output
        cached = self.cached_input if self.cached_input is not None else self.input
        write = self.cache_write if self.cache_write is not None else self.input
        for tier in self.tiers:
            if input_tokens <= tier.above_input_tokens:
                break
            # A tier that omits a cache price scales the base one like its input price: providers
            # raise every input-side price by the same factor above a threshold.
            scale = tier.input / self.input if self.input else 1.0
            cached = tier.cached_input if tier.cached_input is not None else cached * scale
            write = tier.cache_write if tier.cache_write is not None else write * scale
            price_in, price_out = tier.input, tier.output
        return price_in, price_out, cached, write


def _check_price(value: Any, what: str) -> None:
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"{what} must be a non-negative number of USD per million tokens, got {value!r}")


_PRICING_FIELDS = frozenset(f.name for f in fields(Pricing))
_TIER_FIELDS = frozenset(f.name for f in fields(PriceTier))


# ------------------------------------------------------------------------------------ capabilities


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
    source: str | None = None
    """Where these facts come from: ``catalog``, ``override``, ``defaults``, ``detected: ...``, or a mapping."""
    note: str | None = None
    """A caveat about the model itself (deprecated, retired, an alias that moves...)."""


_CAPABILITY_FIELDS = frozenset(f.name for f in fields(Capabilities))
_INT_FIELDS = frozenset({"context_window", "max_output_tokens"})
_BOOL_FIELDS = frozenset(
    {"tools", "parallel_tools", "vision", "json_schema", "streaming", "reasoning", "prompt_caching", "known"}
)

DEFAULTS = Capabilities(source="defaults")
"""What an unknown model is assumed to do."""


def _entry(model_id: str, data: Mapping[str, Any]) -> Capabilities:
    values = {k: v for k, v in data.items() if k in _CAPABILITY_FIELDS}
    raw_pricing = data.get("pricing")
    values["pricing"] = Pricing.from_dict(raw_pricing, where=model_id) if raw_pricing else None
    values["aliases"] = tuple(data.get("aliases", ()))
    values["known"] = True
    values.setdefault("source", "catalog")
    return Capabilities(**values)


def _qualified(alias: str, provider: str) -> str:
    return alias if alias.startswith(f"{provider}/") else f"{provider}/{alias}"


@dataclass(slots=True)
class _Data:
    canonical: dict[str, Capabilities]
    by_id: dict[str, Capabilities]
    """Canonical ids and provider-qualified aliases."""
    by_lower: dict[str, Capabilities]


@cache
def _data() -> _Data:
    raw = json.loads(resources.files("agentadapter.llm").joinpath("catalog.json").read_text("utf-8"))
    canonical: dict[str, Capabilities] = {}
    by_id: dict[str, Capabilities] = {}
    for model_id, data in raw["models"].items():
        entry = _entry(model_id, data)
        canonical[model_id] = entry
        by_id[model_id] = entry
    provider_of = {model_id: model_id.split("/", 1)[0] for model_id in canonical}
    for model_id, entry in canonical.items():
        for alias in entry.aliases:
            by_id.setdefault(_qualified(alias, provider_of[model_id]), entry)
    by_lower = {key.lower(): entry for key, entry in by_id.items()}
    return _Data(canonical, by_id, by_lower)


# ----------------------------------------------------------------------------------- user overrides

_lock = threading.Lock()
_overrides: dict[str, Capabilities] = {}
_resolved: dict[str, Capabilities | None] = {}
"""Memo of :func:`find` answers; cleared whenever an override changes."""
_generation = 0
"""Bumped by every override change, so an answer computed before it is never memoized after it."""
_MEMO_LIMIT = 4096  # model ids come from callers; memos never grow without bound
_warned: set[str] = set()


def override(model_id: str, **values: Any) -> Capabilities:
    """Override (or add) a catalog entry, e.g. from ``agentadapter.yaml``'s ``catalog:`` section.

    ``values`` are :class:`Capabilities` fields; ``pricing`` may be a dict in the JSON shape
    (``{"input": 3.0, "output": 15.0, "tiers": [...]}``). Fields not given keep the catalog's value
    (or the defaults, for a new model). Aliases given here resolve to the overridden entry too.
    """
    entries = _override_entries(model_id, values, find)
    global _generation
    with _lock:
        _overrides.update(entries)
        _generation += 1
        _resolved.clear()
    return entries[model_id]


def _override_entries(
    model_id: str, values: Mapping[str, Any], find_base: Callable[[str], Capabilities | None]
) -> dict[str, Capabilities]:
    """The entries an override of ``model_id`` adds: under its id and each of its aliases."""
    if "/" not in model_id:
        raise ConfigurationError(
            f"catalog override {model_id!r}: use a provider/model id, e.g. 'openai/gpt-4o' or 'my-vllm/llama-3'"
        )
    checked = _validated(model_id, values)
    base = find_base(model_id) or DEFAULTS
    known, source = checked.pop("known", True), checked.pop("source", "override")
    entry = replace(base, known=known, source=source, **checked)
    provider = model_id.split("/", 1)[0]
    entries = {model_id: entry}
    for alias in entry.aliases:
        entries[_qualified(alias, provider)] = entry
    return entries


def clear_overrides() -> None:
    """Forget every override (tests; reloading a config file)."""
    global _generation
    with _lock:
        _overrides.clear()
        _generation += 1
        _resolved.clear()


def _validated(model_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
    where = f"catalog override for {model_id}"
    unknown = set(values) - _CAPABILITY_FIELDS
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"known fields: {', '.join(sorted(_CAPABILITY_FIELDS))}"
        )
    checked = dict(values)
    for name in _INT_FIELDS & checked.keys():
        value = checked[name]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigurationError(f"{where}: {name} must be a positive whole number of tokens, got {value!r}")
    for name in _BOOL_FIELDS & checked.keys():
        if not isinstance(checked[name], bool):
            raise ConfigurationError(f"{where}: {name} must be true or false, got {checked[name]!r}")
    if "api" in checked and checked["api"] not in API_KINDS:
        raise ConfigurationError(f"{where}: api must be one of {', '.join(sorted(API_KINDS))}, got {checked['api']!r}")
    pricing = checked.get("pricing")
    if isinstance(pricing, Mapping):
        checked["pricing"] = Pricing.from_dict(pricing, where=where)
    elif pricing is not None and not isinstance(pricing, Pricing):
        raise ConfigurationError(f"{where}: pricing must be a mapping like {{input: 3.0, output: 15.0}}")
    if "aliases" in checked:
        aliases = checked["aliases"]
        checked["aliases"] = (aliases,) if isinstance(aliases, str) else tuple(aliases)
    return checked


# ------------------------------------------------------------------------------------------ lookup


def lookup(model_id: str) -> Capabilities:
    """Capabilities for ``provider/model``; conservative defaults (``known=False``) when unknown.

    The first lookup of an unknown model logs one warning saying how to teach the catalog about it.
    """
    found = find(model_id)
    if found is not None:
        return found
    if model_id not in _warned:
        if len(_warned) < _MEMO_LIMIT:
            _warned.add(model_id)
        logger.warning(
            "model %r is not in the catalog; assuming a %d-token context window, no vision and no price "
            "(cost_usd stays None). Describe it with catalog.override(%r, context_window=..., pricing={...}), "
            "a `catalog:` entry in agentadapter.yaml, or detect it from its server (agentadapter.llm.detect)",
            model_id, DEFAULTS.context_window, model_id,
        )
    return DEFAULTS


def find(model_id: str) -> Capabilities | None:
    """The catalog entry for ``provider/model`` (see the module docstring for the order), or None."""
    try:
        return _resolved[model_id]
    except KeyError:
        pass
    generation = _generation
    found = _resolve(model_id)
    with _lock:
        if generation == _generation and len(_resolved) < _MEMO_LIMIT:
            _resolved[model_id] = found
    return found


_NO_OVERLAY: Mapping[str, Capabilities] = {}


def _direct(model_id: str, overlay: Mapping[str, Capabilities] = _NO_OVERLAY) -> Capabilities | None:
    """Steps 1-3: exact id or alias, without a date suffix, in lower case (a facade's overlay first,
    then the process-wide overrides, then the data)."""
    data = _data()
    for candidate in _candidates(model_id):
        entry = overlay.get(candidate) or _overrides.get(candidate) or data.by_id.get(candidate)
        if entry is not None:
            return entry
    lowered = model_id.lower()
    for candidate in _candidates(lowered):
        entry = overlay.get(candidate) or _overrides.get(candidate) or data.by_lower.get(candidate)
        if entry is not None:
            return entry
    return None


def _candidates(model_id: str) -> Iterable[str]:
    yield model_id
    stripped = _DATE_SUFFIX.sub("", model_id)
    if stripped != model_id:
        yield stripped


def _resolve(model_id: str, overlay: Mapping[str, Capabilities] = _NO_OVERLAY) -> Capabilities | None:
    entry = _direct(model_id, overlay)
    if entry is not None:
        return entry
    provider, _, model = model_id.partition("/")
    if provider == "openrouter":
        return _via_openrouter(model, overlay)
    if provider == "azure" and model:
        vendor_entry = _direct(f"openai/{model}", overlay)
        if vendor_entry is not None:
            return replace(vendor_entry, source=f"mapped from openai/{model} (Azure deployment named after it)")
    if provider == "bedrock" and model:
        return _via_bedrock(model, overlay)
    if provider == "vertex" and model:
        return _via_vertex(model, overlay)
    return None


# A Bedrock cross-region inference profile's geography, and a model id's version (``-v1:0``).
_BEDROCK_GEO = re.compile(r"^(?:us|eu|apac|global|us-gov|jp|au|ca)\.")
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")
_CLOUD_NOTE = ("the cloud bills the vendor's list price on its global endpoint; for Claude 4.5 and later, regional "
               "and geography-bound endpoints cost 10% more, so treat this price as a floor there")


def _via_bedrock(model: str, overlay: Mapping[str, Capabilities]) -> Capabilities | None:
    """``bedrock/[geo.]<vendor>.<model>-v1:0``: a Bedrock entry, else Anthropic's own for Claude."""
    if model.startswith("arn:"):
        model = model.rsplit("/", 1)[-1]
    bare = _BEDROCK_VERSION.sub("", _BEDROCK_GEO.sub("", model))
    entry = _direct(f"bedrock/{bare}", overlay) or _direct(f"bedrock/{_BEDROCK_GEO.sub('', model)}", overlay)
    if entry is not None:
        return entry
    vendor, _, name = bare.partition(".")
    if vendor == "anthropic" and name:
        found = _direct(f"anthropic/{name}", overlay)
        if found is not None:
            return replace(found, api="chat", source=f"mapped from anthropic/{name} (Claude on Bedrock)",
                           note=_CLOUD_NOTE)
    return None


def _via_vertex(model: str, overlay: Mapping[str, Capabilities]) -> Capabilities | None:
    """``vertex/<model>``: Claude maps to Anthropic's entry, Gemini to the Gemini API's."""
    name = model.rsplit("/", 1)[-1]  # publishers/google/models/<model> is accepted too
    vendor = "anthropic" if name.startswith("claude") else "gemini" if name.startswith("gemini") else None
    if vendor is None:
        return None
    found = _direct(f"{vendor}/{name}", overlay)
    if found is None:
        return None
    note = _CLOUD_NOTE if vendor == "anthropic" else (
        "Vertex AI bills Gemini at the Gemini API's paid-tier list price (standard, on-demand)")
    return replace(found, source=f"mapped from {vendor}/{name} (on Vertex AI)", note=note)


# OpenRouter's vendor prefixes -> our provider names.
_OPENROUTER_VENDORS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gemini",
    "x-ai": "xai",
    "mistralai": "mistral",
    "deepseek": "deepseek",
    "cohere": "cohere",
}


def _via_openrouter(model: str, overlay: Mapping[str, Capabilities]) -> Capabilities | None:
    vendor, _, name = model.partition("/")
    provider = _OPENROUTER_VENDORS.get(vendor)
    if provider is None or not name:
        return None
    name, _, variant = name.partition(":")
    spellings = [name]
    if provider == "anthropic":
        # OpenRouter writes claude-sonnet-4.5; Anthropic writes claude-sonnet-4-5.
        spellings.append(name.replace(".", "-"))
    for spelling in spellings:
        entry = _direct(f"{provider}/{spelling}", overlay)
        if entry is None:
            continue
        target = f"{provider}/{spelling}"
        pricing = entry.pricing
        if variant == "free":
            pricing = Pricing(0.0, 0.0, source="OpenRouter :free variant", note="rate-limited free tier")
        return replace(
            entry, api="chat", pricing=pricing,
            source=f"mapped from {target} (OpenRouter bills the upstream list price)",
        )
    return None


def known_models() -> dict[str, Capabilities]:
    """Every catalog entry by its canonical id (aliases excluded), with overrides applied."""
    models = dict(_data().canonical)
    with _lock:
        overridden = dict(_overrides)
    _add_canonical(models, overridden)
    return models


def _add_canonical(models: dict[str, Capabilities], entries: Mapping[str, Capabilities]) -> None:
    for model_id, entry in entries.items():
        provider = model_id.split("/", 1)[0]
        if not any(_qualified(alias, provider) == model_id for alias in entry.aliases):
            models[model_id] = entry


# ------------------------------------------------------------------------------- a facade's view


class CatalogView:
    """The catalog as one facade sees it: its config's ``catalog:`` entries over the process-wide catalog.

    ``CatalogView()`` (no entries) is the process-wide catalog itself. :meth:`with_overrides` lays more
    entries over a view (a derived facade's config); the view it came from is unchanged. Answers are
    memoized in a bounded LRU (model ids come from callers), dropped whenever :func:`override` changes
    the process-wide catalog underneath.
    """

    __slots__ = ("_find", "_generation", "entries")

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None,
                 *, base: CatalogView | None = None) -> None:
        entries: dict[str, Capabilities] = dict(base.entries) if base is not None else {}
        lookup_base = base.find if base is not None else find
        for model_id, values in (overrides or {}).items():
            # An entry's unset fields come from what this view saw before it (the catalog's, or the defaults).
            entries.update(_override_entries(model_id, values, lambda m: entries.get(m) or lookup_base(m)))
        self.entries: Mapping[str, Capabilities] = entries
        """This view's own entries by id and provider-qualified alias (empty: the process-wide catalog)."""
        self._generation = _generation
        self._find = lru_cache(maxsize=_MEMO_LIMIT)(self._resolve)

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> CatalogView:
        """This view with ``overrides`` (a config's ``catalog:`` section) laid over it."""
        return CatalogView(overrides, base=self) if overrides else self

    def find(self, model_id: str) -> Capabilities | None:
        """:func:`find`, with this view's entries first."""
        if not self.entries:
            return find(model_id)
        if self._generation != _generation:  # the process-wide catalog changed: forget what it said
            self._generation = _generation
            self._find.cache_clear()
        return self._find(model_id)

    def lookup(self, model_id: str) -> Capabilities:
        """:func:`lookup`, with this view's entries first."""
        return self.find(model_id) or lookup(model_id)

    def known_models(self) -> dict[str, Capabilities]:
        """:func:`known_models`, with this view's entries added."""
        models = known_models()
        _add_canonical(models, self.entries)
        return models

    def _resolve(self, model_id: str) -> Capabilities | None:
        return _resolve(model_id, self.entries)


# -------------------------------------------------------------------------------------------- cost


# ------------------------------------------------------------------------------ embedding models


@dataclass(slots=True, frozen=True)
class EmbeddingModel:
    """What an embedding model produces and costs (``catalog.json``'s ``embedding_models``)."""

    dimensions: int
    """The length of the model's own vectors."""
    max_input_tokens: int
    """The most tokens one input may have."""
    price: float | None
    """USD per million input tokens (embeddings bill no output); None when unknown."""
    shortenable: bool = False
    """Whether it takes ``dimensions=`` (fewer dimensions than its own)."""
    aliases: tuple[str, ...] = ()
    source: str | None = None
    as_of: str | None = None
    note: str | None = None

    def cost_usd(self, input_tokens: int) -> float | None:
        return None if self.price is None else input_tokens * self.price / 1_000_000


@cache
def _embedding_data() -> dict[str, EmbeddingModel]:
    raw = json.loads(resources.files("agentadapter.llm").joinpath("catalog.json").read_text("utf-8"))
    found: dict[str, EmbeddingModel] = {}
    for model_id, data in raw.get("embedding_models", {}).items():
        pricing = data.get("pricing") or {}
        entry = EmbeddingModel(
            dimensions=int(data["dimensions"]), max_input_tokens=int(data["max_input_tokens"]),
            price=pricing.get("input"), shortenable=bool(data.get("shortenable")),
            aliases=tuple(data.get("aliases", ())), source=pricing.get("source"), as_of=pricing.get("as_of"),
            note=data.get("note") or pricing.get("note"),
        )
        found[model_id.lower()] = entry
        provider = model_id.split("/", 1)[0]
        for alias in entry.aliases:
            found.setdefault(_qualified(alias, provider).lower(), entry)
    return found


def embedding_models() -> dict[str, EmbeddingModel]:
    """Every embedding model the catalog knows, by id (aliases included)."""
    return dict(_embedding_data())


def embedding_model(model_id: str) -> EmbeddingModel | None:
    """The catalog's entry for an embedding model (``provider/model``), or None."""
    data = _embedding_data()
    key = model_id.lower()
    found = data.get(key)
    if found is not None:
        return found
    provider, _, model = key.partition("/")
    if provider == "azure":  # a deployment named after the model bills OpenAI's list price
        return data.get(f"openai/{model}")
    if provider == "openrouter" and model.startswith("openai/"):
        return data.get(model)
    return None


def batch_cost_usd(usage: Usage, pricing: Pricing | None) -> float | None:
    """:func:`cost_usd` at the batch price; the standard price when no batch price is published (over-
    rather than under-states a cost)."""
    cost = cost_usd(usage, pricing)
    if cost is None or pricing is None or pricing.batch is None:
        return cost
    return round(cost * pricing.batch, 10)


def cost_usd(usage: Usage, pricing: Pricing | None) -> float | None:
    """DESIGN.md's formula, with the tier the prompt size selects.

    ``uncached input * input price + cached * cached price + cache writes * write price + output * output price``,
    where ``uncached input`` is ``input_tokens`` minus the cached and written parts (Usage counts
    them inside ``input_tokens``). None when the price is unknown.
    """
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
