"""What every body of the API shares: the request and response bases, the list page, the name types.

Requests (:class:`RequestModel`) refuse unknown fields: a typo is a 422 naming the field, not a
silent default. Responses (:class:`ResponseModel`) read the store's rows by attribute, and carry an
``object`` tag like OpenAI's (``agent``, ``run``, ``list``), so what a client may send and what it
gets back are separate types and nothing internal leaks into a response. Lists are
:class:`ListPublic`, ``{object: "list", data, has_more, next_cursor}``: pass ``next_cursor`` back
as ``cursor``.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AgentName", "ListPublic", "ModelId", "RequestModel", "ResponseModel", "Task"]

T = TypeVar("T")

AgentName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                                 description="Unique in the tenant; letters, digits, _ . - (handoffs use it).")]
ModelId = Annotated[str, Field(min_length=1, max_length=200, description="provider/model, or an alias")]
Task = str | list[dict[str, Any]]
"""A run's input: a prompt, or OpenAI-style messages."""


class RequestModel(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    """A response body built from a store row (read by attribute)."""

    model_config = ConfigDict(from_attributes=True)


class ListPublic(BaseModel, Generic[T]):
    """A page of a list, newest first."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")
