"""The bodies of ``/v1/usage`` and ``/v1/credits``: usage totals, a tenant's balance, its grants and charges."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentadapter.server.schemas.common import RequestModel, ResponseModel

__all__ = [
    "CreditGrantIn",
    "CreditGrantPublic",
    "CreditTransactionPublic",
    "CreditsPublic",
    "UsageListPublic",
    "UsageTotalsPublic",
]


class UsageTotalsPublic(BaseModel):
    """Sums over one group; the group's keys (``day``, ``model``, ``agent`` ...) sit beside them."""

    model_config = ConfigDict(extra="allow")

    requests: int = Field(description="Every recorded answer, answers from the response cache included.")
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float = Field(description="Cost of the provider calls with a known price.")
    cached_responses: int = Field(description="Answers served from the response cache (no cost).")
    unpriced_requests: int = Field(description="Calls to models without a known price (tokens counted, no cost).")


class UsageListPublic(BaseModel):
    """Usage of the caller's tenant, one entry per group, and the total of them all."""

    object: Literal["list"] = "list"
    group_by: list[str]
    since: datetime | None
    until: datetime | None
    data: list[UsageTotalsPublic]
    total: UsageTotalsPublic


class CreditTransactionPublic(ResponseModel):
    object: Literal["credit_transaction"] = "credit_transaction"
    id: uuid.UUID
    kind: str = Field(description="grant, charge or adjustment.")
    amount_usd: float = Field(description="Positive for a grant, negative for a charge.")
    balance_after_usd: float
    reservation_id: uuid.UUID | None = Field(description="The call reservation a charge settles.")
    description: str
    actor: str | None
    details: dict[str, Any]
    created_at: datetime


class CreditsPublic(BaseModel):
    """The caller's tenant's prepaid balance."""

    object: Literal["credits"] = "credits"
    tenant_id: uuid.UUID
    metered: bool = Field(description="Whether the tenant's LLM calls draw on this balance.")
    balance_usd: float
    reserved_usd: float = Field(description="Held by calls in progress (with several server processes, also the "
                                            "unused part of what the other processes have leased of the balance).")
    available_usd: float = Field(description="balance_usd - reserved_usd: what new calls may hold.")
    transactions: list[CreditTransactionPublic] = Field(description="The most recent grants and charges.")
    has_more: bool
    next_cursor: str | None = Field(description="Pass to GET /v1/credits/transactions?cursor= for older ones.")


class CreditGrantIn(RequestModel):
    amount_usd: float = Field(gt=0, le=1_000_000_000, allow_inf_nan=False, description="USD to add.")
    description: str = Field(default="", max_length=1000, description="Why (an invoice number, a note).")


class CreditGrantPublic(BaseModel):
    object: Literal["credit_grant"] = "credit_grant"
    transaction: CreditTransactionPublic
    balance_usd: float
    reserved_usd: float
    available_usd: float
