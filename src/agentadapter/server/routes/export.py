"""``/v1/export``: the caller's tenant's data as one streamed JSON document (admins only, audited)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from agentadapter.server.deps import AdminOnly, RequestId, StateDep, WriteSessionDep
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.service.common import Caller
from agentadapter.service.tenants import record_export
from agentadapter.store.export import EXPORT_FORMAT, SECTIONS, export_tenant

router = APIRouter(prefix=API_PREFIX + "/export", tags=["export"])


@router.get("", response_class=StreamingResponse, responses={200: {
    "content": {"application/json": {}},
    "description": f"One JSON object ({EXPORT_FORMAT}) with the sections {', '.join(SECTIONS)}."}})
async def export(principal: AdminOnly, session: WriteSessionDep, state: StateDep,
                 request_id: RequestId) -> StreamingResponse:
    """Everything the tenant has, streamed (provider keys as metadata: never their ciphertext)."""
    await record_export(session, Caller(principal, request_id))  # before the first byte is sent
    filename = f"tenant-{principal.tenant_id}.json"
    return StreamingResponse(export_tenant(state.db, principal.tenant_id), media_type="application/json",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
