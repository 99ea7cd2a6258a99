"""Which of a provider's models have a price: the catalog's answer, or the provider's own listing.

:func:`price_coverage` answers ``agentadapter models --provider X``. Offline it lists the catalog's
entries for ``X``. With ``live=True`` it asks the provider which models it serves (``GET /models``,
one request) and says for each whether we can price it and from where: the catalog (its own entry,
or a mapping such as OpenRouter's ``vendor/model`` to the vendor's list price), or the listing
itself where the provider publishes per-token prices there (OpenRouter's pass-through prices,
``pricing.prompt`` / ``completion`` / ``input_cache_read`` / ``input_cache_write`` in USD per
token). Every other model is *unpriced*: its calls have ``cost_usd=None`` until a ``catalog:`` entry
prices it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from agentadapter.llm.backends.openai_common import auth_headers, chat_preset
from agentadapter.llm.catalog import Pricing
from agentadapter.llm.errors import InvalidResponseError

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM

__all__ = ["ModelPrice", "listing_pricing", "price_coverage"]

PriceOrigin = Literal["catalog", "listing"]


@dataclass(slots=True, frozen=True)
class ModelPrice:
    """One model of a provider and its price, if we know one."""

    model_id: str
    pricing: Pricing | None
    origin: PriceOrigin | None
    """Where the price comes from; None: unpriced."""
    served: bool | None = None
    """Whether the provider's listing names it (None: not asked)."""

    @property
    def priced(self) -> bool:
        return self.pricing is not None


def listing_pricing(raw: Any, source: str) -> Pricing | None:
    """A listing entry's per-token prices (OpenRouter's shape: strings of USD per token) per million."""
    if not isinstance(raw, Mapping):
        return None

    def per_million(key: str) -> float | None:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return None
        try:
            number = float(value)
        except ValueError:
            return None
        return None if number < 0 else round(number * 1_000_000, 10)  # -1: priced per request by the route

    price_in, price_out = per_million("prompt"), per_million("completion")
    if price_in is None or price_out is None:
        return None
    return Pricing(price_in, price_out, cached_input=per_million("input_cache_read"),
                   cache_write=per_million("input_cache_write"), source=source,
                   note="the provider's own listing (pass-through price)")


async def price_coverage(llm: LLM, provider: str, *, live: bool = False) -> list[ModelPrice]:
    """Every model of ``provider`` we know (or, ``live``, it serves), with its price or none, sorted by id."""
    known = {model_id: caps for model_id, caps in llm.catalog.known_models().items()
             if model_id.split("/", 1)[0] == provider}
    if not live:
        return [ModelPrice(model_id, caps.pricing, "catalog" if caps.pricing else None)
                for model_id, caps in sorted(known.items())]
    listing = await _listing(llm, provider)
    rows: dict[str, ModelPrice] = {}
    for name, entry in listing.items():
        model_id = f"{provider}/{name}"
        caps = llm.catalog.find(model_id)
        if caps is not None and caps.pricing is not None:
            rows[model_id] = ModelPrice(model_id, caps.pricing, "catalog", served=True)
            continue
        listed = listing_pricing(entry.get("pricing"), f"{provider} GET /models")
        rows[model_id] = ModelPrice(model_id, listed, "listing" if listed else None, served=True)
    for model_id, caps in known.items():
        rows.setdefault(model_id, ModelPrice(model_id, caps.pricing, "catalog" if caps.pricing else None,
                                             served=False))
    return [rows[key] for key in sorted(rows)]


async def _listing(llm: LLM, provider: str) -> dict[str, Mapping[str, Any]]:
    """The provider's model listing by model id (entries as the provider sent them)."""
    backend = llm.resolver.backend(provider)
    if backend.type_name not in ("openai_chat", "openai_responses"):
        return {name: {} for name in await backend.list_models()}
    preset = chat_preset(backend.config.type)
    base_url = (backend.config.base_url or preset.base_url or "").rstrip("/")
    backend.check_setup()
    headers = {**auth_headers(preset, backend.config.api_key), **backend.config.headers}
    body, _ = await backend.send_json(backend.http_request("GET", f"{base_url}/models", None, headers=headers))
    data = body.get("data") if isinstance(body, Mapping) else body
    if not isinstance(data, list):
        raise InvalidResponseError(f"{provider} answered GET /models with an unexpected shape: {str(body)[:200]}",
                                   provider=provider, body=body)
    return {str(entry["id"]): entry for entry in data if isinstance(entry, Mapping) and "id" in entry}
