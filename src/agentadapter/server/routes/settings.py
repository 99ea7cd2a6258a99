"""``/v1/settings``: the current user's settings (for an API key: the tenant's default user)."""

from __future__ import annotations

from fastapi import APIRouter

from agentadapter.server.deps import RequestId, SessionDep, SettingsRead, SettingsWrite, StateDep, WriteSessionDep
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import SettingsPatch, SettingsPublic, SettingsPut
from agentadapter.service.common import Caller
from agentadapter.service.settings import change_settings
from agentadapter.store import users

router = APIRouter(prefix=API_PREFIX + "/settings", tags=["settings"])


@router.get("", response_model=SettingsPublic)
async def get_settings(principal: SettingsRead, session: SessionDep) -> SettingsPublic:
    """Default models, RAG archives searched by default, and the preference for local models."""
    settings = await users.get_settings(session, principal.tenant_id, principal.user_id)
    return SettingsPublic.model_validate(settings)


@router.put("", response_model=SettingsPublic)
async def replace_settings(data: SettingsPut, principal: SettingsWrite, session: WriteSessionDep, state: StateDep,
                           request_id: RequestId) -> SettingsPublic:
    """Replace every setting; those left out go back to their defaults."""
    settings = await change_settings(session, state, Caller(principal, request_id), data.model_dump(), replace=True)
    return SettingsPublic.model_validate(settings)


@router.patch("", response_model=SettingsPublic)
async def update_settings(data: SettingsPatch, principal: SettingsWrite, session: WriteSessionDep, state: StateDep,
                          request_id: RequestId) -> SettingsPublic:
    """Change the settings given; the others stay."""
    settings = await change_settings(session, state, Caller(principal, request_id), data.model_dump(exclude_unset=True),
                                     replace=False)
    return SettingsPublic.model_validate(settings)
