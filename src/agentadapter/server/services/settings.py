"""The current user's settings: read, replace (PUT) or change (PATCH), audited.

For an API key the current user is the tenant's default user (the seeds' "settings tied to the
default user"); for a JWT it is the token's subject. The settings feed every run the user starts:
``default_model`` for agents without a model, ``prefer_local`` for agents whose transport is open.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.server.schemas import SettingsPatch, SettingsPut
from agentadapter.server.services.common import Caller, record
from agentadapter.server.services.trust import check_model
from agentadapter.server.state import AppState
from agentadapter.store import users
from agentadapter.store.models import UserSettings

__all__ = ["change_settings"]


async def change_settings(
    session: AsyncSession, state: AppState, caller: Caller, data: SettingsPut | SettingsPatch
) -> UserSettings:
    replace = isinstance(data, SettingsPut)
    values = data.model_dump() if replace else data.model_dump(exclude_unset=True)
    if not replace:
        # null means "back to the default" only where null is a value (default_model); elsewhere ignore it.
        values = {k: v for k, v in values.items() if v is not None or k == "default_model"}
    if values.get("default_model"):
        check_model(state.llm, values["default_model"], param="default_model")
    for purpose, model in (values.get("default_models") or {}).items():
        check_model(state.llm, model, param=f"default_models.{purpose}")
    settings = await users.update_settings(session, caller.tenant_id, caller.user_id, values, replace=replace)
    await record(session, caller, "settings.replace" if replace else "settings.update", "settings", caller.user_id,
                 {"fields": sorted(values)})
    await session.commit()
    return settings
