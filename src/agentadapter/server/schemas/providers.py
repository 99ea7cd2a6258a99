"""The body of ``/v1/providers``: one provider preset, and whether the server has its key."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["ProviderPublic"]


class ProviderPublic(BaseModel):
    object: Literal["provider"] = "provider"
    name: str
    label: str
    wire_format: str
    base_url: str | None
    key_env: str | None
    key_set: bool
    key_required: bool
    local: bool
