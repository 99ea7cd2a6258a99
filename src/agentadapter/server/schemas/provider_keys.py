"""Bodies of ``/v1/provider-keys``: the key goes in (``ProviderKeyCreate``, ``ProviderKeyRotate``) and
never comes out - ``ProviderKeyPublic`` shows the provider, name, the last 4 characters as a hint and
the environment variable the key stands in for.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from agentadapter.server.schemas.common import RequestModel
from agentadapter.store.models import ProviderKey
from agentadapter.store.provider_keys import env_var

__all__ = ["ProviderKeyCreate", "ProviderKeyPublic", "ProviderKeyRotate"]

# Length is checked by the store (its message names the field without echoing the value).
KeyText = Annotated[str, Field(max_length=4096, description="The provider's API key; write-only.")]


class ProviderKeyCreate(RequestModel):
    provider: str = Field(min_length=1, max_length=64, description="A provider preset: openai, anthropic, ...")
    name: str = Field("default", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                      description="Tells several keys of one provider apart; the `default` one is used for calls.")
    key: KeyText


class ProviderKeyRotate(RequestModel):
    key: KeyText


class ProviderKeyPublic(BaseModel):
    object: Literal["provider_key"] = "provider_key"
    id: uuid.UUID
    provider: str
    name: str
    hint: str = Field(description="The key's last characters, as `...abcd`.")
    env_var: str = Field(description="The environment variable the key is used as (OPENAI_API_KEY, ...).")
    created_at: datetime
    updated_at: datetime
    rotated_at: datetime | None

    @classmethod
    def of(cls, row: ProviderKey) -> ProviderKeyPublic:
        return cls(id=row.id, provider=row.provider, name=row.name, hint="..." + row.hint,
                   env_var=env_var(row.provider), created_at=row.created_at, updated_at=row.updated_at,
                   rotated_at=row.rotated_at)
