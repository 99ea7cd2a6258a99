"""``/v1/compliance``: the tenant's personal-data policy, consents, erasures and compliance report.

Admins read and change the policy, ask for and cancel erasures and read the report; a user reads and
records their own consents (an admin anyone's). The work is the application layer's
(:mod:`agentadapter.service.compliance`); these routes validate, call it and shape the replies.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from agentadapter.server.auth import Principal
from agentadapter.server.deps import AdminOnly, CurrentPrincipal, RequestId, SessionDep, StateDep, WriteSessionDep
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import error_responses
from agentadapter.server.state import AppState
from agentadapter.service import compliance
from agentadapter.service.common import Caller
from agentadapter.service.compliance_report import compliance_report, report_html
from agentadapter.service.errors import NotAllowed
from agentadapter.store import compliance as store
from agentadapter.store.compliance_models import ErasureRequest

router = APIRouter(prefix=API_PREFIX + "/compliance", tags=["compliance"])


class PolicyUpdate(BaseModel):
    """The fields to change (the others stay)."""

    model_config = ConfigDict(extra="forbid")

    pii_mode: str | None = Field(default=None, description="keep, mask or hash: what stored personal data becomes")
    detectors: list[str] | None = Field(default=None, max_length=32, description="email, phone, card, iban, ip")
    phone_region: str | None = Field(default=None, max_length=8, description="two-letter country code")
    retention_days: float | None = Field(default=None, description="the tenant's retention; null: the server's")
    external_providers: list[str] | None = Field(default=None, max_length=64)
    required_consents: list[str] | None = Field(default=None, max_length=32)


class ConsentsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consents: dict[str, bool] = Field(max_length=32, description='{"purpose": true | false}')


class ErasureCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID | None = Field(default=None, description="the user to erase; omitted: the whole tenant")
    reason: str = Field(default="", max_length=2000)


class ErasurePublic(BaseModel):
    id: uuid.UUID
    scope: str
    status: str
    user_id: uuid.UUID | None
    requested_by: str | None
    reason: str
    execute_after: datetime
    executed_at: datetime | None
    created_at: datetime
    report: dict[str, Any]

    @classmethod
    def of(cls, row: ErasureRequest) -> ErasurePublic:
        return cls(
            id=row.id,
            scope=row.scope,
            status=row.status,
            user_id=row.user_id,
            requested_by=row.requested_by,
            reason=row.reason,
            execute_after=row.execute_after,
            executed_at=row.executed_at,
            created_at=row.created_at,
            report=dict(row.report or {}),
        )


def erasure_parts(state: AppState) -> compliance.ErasureParts:
    """Where an erasure reaches in this server: its database, file storage, Redis and caches."""
    return compliance.erasure_parts(
        state.db,
        storage=state.knowledge.storage if state.knowledge is not None else None,
        redis=state.redis.commands if state.redis is not None else None,
        forget=[lambda _tenant: state.auth.forget(), state.tenant_llms.invalidate],
    )


def _self_or_admin(principal: Principal, user_id: uuid.UUID) -> None:
    if principal.user_id != user_id and not principal.can("audit", "admin"):
        raise NotAllowed(
            "a user's consents are theirs to read and record, or an admin's; this caller is neither",
            code="insufficient_permissions",
        )


@router.get("/policy")
async def get_policy(principal: AdminOnly, session: SessionDep, state: StateDep) -> dict[str, Any]:
    row = await store.get_policy(session, principal.tenant_id)
    return compliance.policy_view(row, default_retention_days=state.settings.retention_days)


@router.patch("/policy")
async def update_policy(
    principal: AdminOnly, session: WriteSessionDep, state: StateDep, request_id: RequestId, body: PolicyUpdate
) -> dict[str, Any]:
    fields = body.model_fields_set
    change = compliance.PolicyChange(
        pii_mode=body.pii_mode,
        detectors=body.detectors,
        phone_region=body.phone_region,
        retention_days=body.retention_days,
        clear_retention="retention_days" in fields and body.retention_days is None,
        external_providers=body.external_providers,
        required_consents=body.required_consents,
    )
    row = await compliance.update_policy(session, Caller(principal, request_id), change)
    state.tenant_llms.invalidate(principal.tenant_id)  # its facade masks the calls of the providers it marks external
    return compliance.policy_view(row, default_retention_days=state.settings.retention_days)


@router.get("/consents/{user_id}")
async def get_consents(principal: CurrentPrincipal, session: SessionDep, user_id: uuid.UUID) -> dict[str, Any]:
    _self_or_admin(principal, user_id)
    from agentadapter.store import users

    await users.get_user(session, principal.tenant_id, user_id)
    rows = await store.consents_of(session, principal.tenant_id, user_id)
    policy = await store.get_policy(session, principal.tenant_id)
    return {
        "user_id": str(user_id),
        "required": list(policy.required_consents) if policy else [],
        "consents": {
            p: {"granted": r.granted, "source": r.source, "updated_at": r.updated_at.isoformat()}
            for p, r in sorted(rows.items())
        },
    }


@router.put("/consents/{user_id}")
async def set_consents(
    principal: CurrentPrincipal,
    session: WriteSessionDep,
    request_id: RequestId,
    user_id: uuid.UUID,
    body: ConsentsUpdate,
) -> dict[str, Any]:
    _self_or_admin(principal, user_id)
    consents = await compliance.set_user_consents(session, Caller(principal, request_id), user_id, body.consents)
    return {"user_id": str(user_id), "consents": consents}


@router.post("/erasures", status_code=202, response_model=ErasurePublic, responses=error_responses(404, 409))
async def request_erasure(
    principal: AdminOnly, state: StateDep, request_id: RequestId, body: ErasureCreate
) -> ErasurePublic:
    """Ask for an erasure; carried out after the soft-delete window (at once when it is 0)."""
    caller = Caller(principal, request_id)
    # Its own write session, closed before the erasure runs (which takes the database's writer itself).
    async with state.db.write_session() as session:
        row = await compliance.request_erasure(session, caller, user_id=body.user_id, reason=body.reason)
        view = ErasurePublic.of(row)
    if view.user_id is not None:
        state.auth.forget()  # the user's keys were revoked: this process stops accepting them now, not in a while
    if view.execute_after > view.created_at:
        return view
    report = await compliance.execute_erasure(erasure_parts(state), principal.tenant_id, view.id, caller=caller)
    if view.scope == "tenant":  # the request went with the tenant: answer with what the erasure did
        return view.model_copy(update={"status": "done", "report": report})
    async with state.db.session() as session:
        return ErasurePublic.of(await store.get_erasure(session, principal.tenant_id, view.id))


@router.get("/erasures", response_model=list[ErasurePublic])
async def list_erasures(principal: AdminOnly, session: SessionDep) -> list[ErasurePublic]:
    return [ErasurePublic.of(r) for r in await store.list_erasures(session, principal.tenant_id)]


@router.get("/erasures/{erasure_id}", response_model=ErasurePublic)
async def get_erasure(principal: AdminOnly, session: SessionDep, erasure_id: uuid.UUID) -> ErasurePublic:
    return ErasurePublic.of(await store.get_erasure(session, principal.tenant_id, erasure_id))


@router.post("/erasures/{erasure_id}/cancel", response_model=ErasurePublic, responses=error_responses(409))
async def cancel_erasure(
    principal: AdminOnly, session: WriteSessionDep, request_id: RequestId, erasure_id: uuid.UUID
) -> ErasurePublic:
    return ErasurePublic.of(await compliance.cancel_erasure(session, Caller(principal, request_id), erasure_id))


@router.get("/report")
async def report(
    principal: AdminOnly,
    session: SessionDep,
    state: StateDep,
    access_days: Annotated[float, Query(gt=0, le=3650, description="how far back access is summed")] = 90.0,
) -> dict[str, Any]:
    """The tenant's compliance report as JSON (``/report.html``: the same as a page)."""
    return await compliance_report(
        session, principal.tenant_id, default_retention_days=state.settings.retention_days, access_days=access_days
    )


@router.get("/report.html", response_class=HTMLResponse)
async def report_page(
    principal: AdminOnly,
    session: SessionDep,
    state: StateDep,
    access_days: Annotated[float, Query(gt=0, le=3650)] = 90.0,
) -> HTMLResponse:
    data = await compliance_report(
        session, principal.tenant_id, default_retention_days=state.settings.retention_days, access_days=access_days
    )
    return HTMLResponse(report_html(data))
