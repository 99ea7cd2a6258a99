"""Bodies of ``/v1/settings``: the caller's settings replaced (``SettingsPut``), changed (``SettingsPatch``)
and shown (``SettingsPublic``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from agentadapter.server.schemas.common import ModelId, RequestModel, ResponseModel

__all__ = ["SettingsPatch", "SettingsPublic", "SettingsPut"]


class SettingsPut(RequestModel):
    """The whole settings; a field left out goes back to its default."""

    default_model: ModelId | None = None
    default_models: dict[str, ModelId] = Field(default_factory=dict,
                                               description="By purpose: chat, embedding, vision, ...")
    rag_archives: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=100, description="File archives searched for RAG by default.")
    prefer_local: bool = Field(default=False, description=(
        "Stored for your clients. Agents run through the API reach local models only through the "
        "operator's aliases."))
    preferences: dict[str, Any] = Field(default_factory=dict)


class SettingsPatch(RequestModel):
    """Only the fields given change."""

    default_model: ModelId | None = None
    default_models: dict[str, ModelId] | None = None
    rag_archives: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = Field(default=None,
                                                                                           max_length=100)
    prefer_local: bool | None = None
    preferences: dict[str, Any] | None = None


class SettingsPublic(ResponseModel):
    object: Literal["settings"] = "settings"
    user_id: uuid.UUID
    default_model: str | None
    default_models: dict[str, str]
    rag_archives: list[str]
    prefer_local: bool
    preferences: dict[str, Any]
    updated_at: datetime
