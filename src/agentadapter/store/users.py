"""Users and their settings.

A user is a JWT subject (created on their first request) or a tenant's default user, whom API keys
act as. Each user has one :class:`~agentadapter.store.models.UserSettings` row - the seeds' user
settings: default models, the file archives searched for RAG by default, and whether to prefer
local models - created with the user. Every function takes the tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.audit import record_audit
from agentadapter.store.errors import RecordNotFound
from agentadapter.store.models import User, UserSettings

__all__ = [
    "DEFAULT_SUBJECT",
    "SETTINGS_FIELDS",
    "default_user",
    "ensure_default_user",
    "get_or_create_user",
    "get_settings",
    "get_user",
    "update_settings",
]

DEFAULT_SUBJECT = "default"
SETTINGS_FIELDS = ("default_model", "default_models", "rag_archives", "prefer_local", "preferences")
_SETTINGS_DEFAULTS: dict[str, Any] = {
    "default_model": None, "default_models": {}, "rag_archives": [], "prefer_local": False, "preferences": {},
}


async def get_user(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> User:
    user: User | None = await session.scalar(sa.select(User).where(User.tenant_id == tenant_id, User.id == user_id))
    if user is None:
        raise RecordNotFound("user", user_id)
    return user


async def get_or_create_user(
    session: AsyncSession, tenant_id: uuid.UUID, subject: str, *, role: str = "member",
    email: str | None = None, display_name: str | None = None,
) -> User:
    """The user with this subject, created (with default settings) on first sight; role and names follow the token."""
    user: User | None = await session.scalar(
        sa.select(User).where(User.tenant_id == tenant_id, User.subject == subject)
    )
    if user is None:
        user = User(id=uuid.uuid4(), tenant_id=tenant_id, subject=subject, role=role, email=email,
                    display_name=display_name, is_default=subject == DEFAULT_SUBJECT)
        session.add(user)
        await session.flush()
        session.add(UserSettings(id=uuid.uuid4(), tenant_id=tenant_id, user_id=user.id, **_SETTINGS_DEFAULTS))
        await session.flush()
    else:
        previous_role = user.role
        for name, value in (("role", role), ("email", email), ("display_name", display_name)):
            if value is not None and getattr(user, name) != value:
                setattr(user, name, value)
        if user.role != previous_role:
            # The identity provider changed the user's role: a permission change belongs in the log.
            await record_audit(session, tenant_id, action="user.role_change", resource_type="user",
                               resource_id=user.id, actor_type="user", actor_id=user.id,
                               details={"from": previous_role, "to": user.role, "subject": subject,
                                        "source": "token claims"})
    return user


async def ensure_default_user(session: AsyncSession, tenant_id: uuid.UUID) -> User:
    """The tenant's default user (an admin), created with their settings when missing."""
    user: User | None = await session.scalar(
        sa.select(User).where(User.tenant_id == tenant_id, User.is_default.is_(True))
    )
    if user is not None:
        return user
    return await get_or_create_user(session, tenant_id, DEFAULT_SUBJECT, role="admin", display_name="Default user")


async def default_user(session: AsyncSession, tenant_id: uuid.UUID) -> User:
    user: User | None = await session.scalar(
        sa.select(User).where(User.tenant_id == tenant_id, User.is_default.is_(True))
    )
    if user is None:
        raise RecordNotFound("default user of tenant", tenant_id)
    return user


async def get_settings(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> UserSettings:
    """The user's settings (created with the defaults if the row is missing)."""
    settings: UserSettings | None = await session.scalar(
        sa.select(UserSettings).where(UserSettings.tenant_id == tenant_id, UserSettings.user_id == user_id)
    )
    if settings is None:
        await get_user(session, tenant_id, user_id)
        settings = UserSettings(id=uuid.uuid4(), tenant_id=tenant_id, user_id=user_id, **_SETTINGS_DEFAULTS)
        session.add(settings)
        await session.flush()
    return settings


async def update_settings(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, values: Mapping[str, Any], *,
    replace: bool = False,
) -> UserSettings:
    """Change the user's settings: the given fields (PATCH), or all of them, missing ones reset (PUT)."""
    unknown = set(values) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; the settings are {', '.join(SETTINGS_FIELDS)}")
    settings = await get_settings(session, tenant_id, user_id)
    changes = {**_SETTINGS_DEFAULTS, **values} if replace else dict(values)
    for name, value in changes.items():
        setattr(settings, name, value)
    await session.flush()
    return settings
