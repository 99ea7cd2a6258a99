"""``/v1/credits``: the caller's tenant's prepaid balance and its history; grants for operators.

Reading needs the read role. Granting is an operator's action: it needs an admin API key that carries
the ``credits:admin`` scope explicitly, which only the operator makes, from the command line
(``agentadapter keys create --tenant NAME --role admin --scope credits:admin``), or the operator grants
with ``agentadapter credits add``. A tenant's own admins must not be able to grant themselves
credits, and a JWT's scopes are whatever its identity provider wrote, so JWTs grant only when the
operator turns that on (``AGENTADAPTER_JWT_CREDITS_ADMIN=true``). Every grant is audited, and the
tenant's LLM facade is rebuilt at once, so a tenant metered from this grant on is checked from its
next call (other server instances pick it up within ``AGENTADAPTER_AUTH_CACHE_S``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from agentadapter.server.auth import Principal
from agentadapter.server.deps import CurrentPrincipal, PageDep, RequestId, SessionDep, StateDep, WriteSessionDep
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import (
    CreditGrantIn,
    CreditGrantPublic,
    CreditsPublic,
    CreditTransactionPublic,
    ListPublic,
)
from agentadapter.service import credits as credit_service
from agentadapter.service.common import Caller
from agentadapter.store import credits

__all__ = ["CREDITS_ADMIN_SCOPE", "router"]

router = APIRouter(prefix=API_PREFIX + "/credits", tags=["credits"])

CREDITS_ADMIN_SCOPE = "credits:admin"


async def _reader(principal: CurrentPrincipal) -> Principal:
    if principal.can("credits", "read") or CREDITS_ADMIN_SCOPE in principal.scopes:
        return principal
    raise HTTPProblem(403, f"reading credits needs the read role and, on a scoped key, a credits or read scope (this "
                        f"{principal.kind.replace('_', ' ')} has role {principal.role})",
                   code="insufficient_permissions",
                   details={"resource": "credits", "action": "read", "scopes": sorted(principal.scopes)})


async def _granter(principal: CurrentPrincipal, state: StateDep) -> Principal:
    # Not principal.can(): wildcard scopes and the plain admin role must not reach this.
    scoped = principal.role == "admin" and CREDITS_ADMIN_SCOPE in principal.scopes
    if scoped and (principal.kind == "api_key" or state.server.jwt_credits_admin):
        return principal
    details = {"resource": "credits", "action": "grant", "role": principal.role, "kind": principal.kind,
               "scopes": sorted(principal.scopes)}
    if scoped:  # a JWT with the scope, on a server that does not let JWTs grant
        raise HTTPProblem(
            403, "granting credits is an operator's action: JWTs may not grant, whatever their scopes, unless the "
                 "operator sets AGENTADAPTER_JWT_CREDITS_ADMIN=true; use an API key made with `agentadapter keys "
                 f"create --tenant NAME --role admin --scope {CREDITS_ADMIN_SCOPE}`, or `agentadapter credits add`",
            code="insufficient_permissions", details=details)
    raise HTTPProblem(
        403, f"granting credits needs an admin API key with the explicit {CREDITS_ADMIN_SCOPE} scope, which "
             "tenant admins do not have; an operator makes one with `agentadapter keys create --tenant NAME --role "
             f"admin --scope {CREDITS_ADMIN_SCOPE}`, or grants with `agentadapter credits add --tenant NAME AMOUNT`",
        code="insufficient_permissions", details=details)


CreditsRead = Annotated[Principal, Depends(_reader)]
CreditsGrant = Annotated[Principal, Depends(_granter)]


@router.get("", response_model=CreditsPublic)
async def get_credits(
    principal: CreditsRead, session: SessionDep, state: StateDep,
    limit: Annotated[int, Query(ge=0, le=100, description="How many recent transactions to include.")] = 20,
) -> CreditsPublic:
    await credit_service.charges_written(state.tenant_llms)  # the calls that have just finished show
    account = await credits.account(session, principal.tenant_id)
    page = await credits.transactions(session, principal.tenant_id, limit=limit) if account and limit else None
    balance, reserved = await credit_service.credit_balance(account, state.tenant_llms)
    return CreditsPublic(
        tenant_id=principal.tenant_id, metered=account is not None, balance_usd=balance, reserved_usd=reserved,
        available_usd=balance - reserved,
        transactions=[CreditTransactionPublic.model_validate(t) for t in page.items] if page else [],
        has_more=page.has_more if page else False, next_cursor=page.next_cursor if page else None,
    )


@router.get("/transactions", response_model=ListPublic[CreditTransactionPublic])
async def list_credit_transactions(
    principal: CreditsRead, session: SessionDep, page: PageDep, state: StateDep,
    kind: Annotated[str | None, Query(pattern="^(grant|charge|adjustment)$")] = None,
) -> ListPublic[CreditTransactionPublic]:
    await credit_service.charges_written(state.tenant_llms)
    found = await credits.transactions(session, principal.tenant_id, limit=page.limit, cursor=page.cursor, kind=kind)
    return ListPublic[CreditTransactionPublic](data=[CreditTransactionPublic.model_validate(t) for t in found.items],
                                               has_more=found.has_more, next_cursor=found.next_cursor)


@router.post("/grants", response_model=CreditGrantPublic, status_code=201)
async def grant_credits(data: CreditGrantIn, principal: CreditsGrant, session: WriteSessionDep, state: StateDep,
                        request_id: RequestId) -> CreditGrantPublic:
    granted = await credit_service.grant_credits(session, Caller(principal, request_id), data.amount_usd,
                                                 data.description, facades=state.tenant_llms)
    return CreditGrantPublic(
        transaction=CreditTransactionPublic.model_validate(granted.transaction), balance_usd=granted.balance_usd,
        reserved_usd=granted.reserved_usd, available_usd=granted.available_usd,
    )
