"""Keyset pagination: pages newest first, with an opaque cursor that stays stable under inserts.

A list query orders by ``(created_at, id)`` descending and asks for one row more than the page;
the cursor of the next page encodes the last row's ``(created_at, id)``, and the next query starts
strictly below it (``WHERE (created_at, id) < (:t, :id)``), which the ``(tenant_id, created_at)``
indexes serve without an offset scan. Cursors are URL-safe base64 of a small JSON array.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.errors import InvalidCursor

__all__ = ["MAX_PAGE_SIZE", "Page", "decode_cursor", "encode_cursor", "paginate"]

T = TypeVar("T")
MAX_PAGE_SIZE = 100


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of rows and the cursor of the next (None on the last page)."""

    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), row_id.hex], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:
            raise ValueError("naive timestamp")
        # In UTC here: a moment near year 1 or 9999 with an offset has none, and the driver would fail on it.
        # uuid.UUID of a non-string fails with AttributeError.
        return moment.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise InvalidCursor(cursor) from exc


async def paginate(
    session: AsyncSession, statement: sa.Select[Any], model: Any, *, limit: int, cursor: str | None,
    rows: bool = False,
) -> Page[Any]:
    """Run ``statement`` (already filtered by tenant) one page at a time, newest first.

    ``statement`` selects ``model`` (items are ORM objects), or with ``rows=True`` some of its
    columns, ``id`` and ``created_at`` among them (items are dicts: no ORM objects to build).
    """
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    if cursor:
        created_at, row_id = decode_cursor(cursor)
        statement = statement.where(sa.tuple_(model.created_at, model.id) < sa.tuple_(
            sa.literal(created_at, model.created_at.type), sa.literal(row_id, model.id.type)))
    statement = statement.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    found: Sequence[Any]
    if rows:
        found = [dict(row) for row in (await session.execute(statement)).mappings()]
    else:
        found = (await session.scalars(statement)).all()
    items = list(found[:limit])
    next_cursor = None
    if len(found) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last["created_at"], last["id"]) if rows else encode_cursor(last.created_at, last.id)
    return Page(items, next_cursor)
