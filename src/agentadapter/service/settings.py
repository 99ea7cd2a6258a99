"""The current user's settings: read, replace (PUT) or change (PATCH), audited.

For an API key the current user is the tenant's default user (the seeds' "settings tied to the
default user"); for a JWT it is the token's subject. The settings feed every run the user starts:
``default_model`` for agents without a model. ``prefer_local`` is stored for the user's clients;
agents built from tenant data always run on the tenant's facade (the trust boundary), so local
models are reached through the aliases the operator defines, whatever it says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.service.common import BuildParts, Caller, record
from agentadapter.service.trust import check_model
from agentadapter.store import users
from agentadapter.store.models import UserSettings

__all__ = ["change_settings"]


async def change_settings(
    session: AsyncSession, parts: BuildParts, caller: Caller, fields: Mapping[str, Any], *, replace: bool
) -> UserSettings:
    """``replace``: ``fields`` are the whole settings (PUT: those left out go back to their defaults);
    else only the fields given change (PATCH)."""
    values = dict(fields)
    if not replace:
        # null means "back to the default" only where null is a value (default_model); elsewhere ignore it.
        values = {k: v for k, v in values.items() if v is not None or k == "default_model"}
    if values.get("default_model"):
        check_model(parts.llm, values["default_model"], param="default_model")
    for purpose, model in (values.get("default_models") or {}).items():
        check_model(parts.llm, model, param=f"default_models.{purpose}")
    settings = await users.update_settings(session, caller.tenant_id, caller.user, values, replace=replace)
    await record(session, caller, "settings.replace" if replace else "settings.update", "settings", caller.user,
                 {"fields": sorted(values)})
    await session.commit()
    return settings
