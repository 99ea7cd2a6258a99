"""The store of recent Responses-API answers behind ``previous_response_id``, one per tenant.

OpenAI's Responses API lets a client continue from an earlier answer by its id instead of sending
the conversation again. The gateway keeps what that needs, the conversation each response
ended (its input and its output, as neutral messages; not its ``instructions``, which OpenAI does not
carry over either), for ``gateway.responses_ttl_s`` (a day by default), in Redis when the server has
it (keys expire by themselves) or else in the service database (:mod:`agentadapter.store.stored_responses`).
Every key and row includes the tenant id, so a tenant that names another tenant's response id is told
it does not exist. ``gateway.responses_store: off`` keeps nothing: a request with
``previous_response_id`` is then refused with a clear error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from agentadapter.config import GatewaySpec
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import Message, coerce_messages
from agentadapter.redis_connections import RedisConnections
from agentadapter.service.errors import InvalidInput, NotFound
from agentadapter.store.database import Database
from agentadapter.store.stored_responses import get_stored_response, put_stored_response

__all__ = ["DatabaseResponseStore", "RedisResponseStore", "ResponseStore", "load_conversation", "response_store",
           "save_conversation"]

_REDIS_PREFIX = "agentadapter:responses:"
_MAX_STORED_BYTES = 8 * 1024 * 1024


class ResponseStore(Protocol):
    """Where conversations are kept: per tenant, for ``ttl_s`` seconds."""

    ttl_s: float

    async def put(self, tenant_id: uuid.UUID, response_id: str, data: dict[str, Any]) -> None: ...

    async def get(self, tenant_id: uuid.UUID, response_id: str) -> dict[str, Any] | None: ...


class DatabaseResponseStore:
    """Rows of ``stored_responses`` in the service database."""

    def __init__(self, db: Database, ttl_s: float) -> None:
        self.db = db
        self.ttl_s = ttl_s

    async def put(self, tenant_id: uuid.UUID, response_id: str, data: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        async with self.db.writer() as session:
            await put_stored_response(session, tenant_id, response_id, data, now + timedelta(seconds=self.ttl_s), now)

    async def get(self, tenant_id: uuid.UUID, response_id: str) -> dict[str, Any] | None:
        async with self.db.session() as session:
            return await get_stored_response(session, tenant_id, response_id, datetime.now(UTC))


class RedisResponseStore:
    """One Redis key per response, ``agentadapter:responses:<tenant>:<response id>``, expiring by itself."""

    def __init__(self, redis: RedisConnections, ttl_s: float, prefix: str = _REDIS_PREFIX) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.prefix = prefix

    def _key(self, tenant_id: uuid.UUID, response_id: str) -> str:
        return f"{self.prefix}{tenant_id}:{response_id}"

    async def put(self, tenant_id: uuid.UUID, response_id: str, data: dict[str, Any]) -> None:
        await self.redis.commands.set(self._key(tenant_id, response_id), json.dumps(data),
                                      px=max(1, int(self.ttl_s * 1000)))

    async def get(self, tenant_id: uuid.UUID, response_id: str) -> dict[str, Any] | None:
        raw = await self.redis.commands.get(self._key(tenant_id, response_id))
        return json.loads(raw) if raw is not None else None


def response_store(spec: GatewaySpec, db: Database, redis: RedisConnections | None) -> ResponseStore | None:
    """The store the operator configured (``gateway.responses_store``); None when it is off."""
    if spec.responses_store == "off":
        return None
    if spec.responses_store == "redis" or (spec.responses_store == "auto" and redis is not None):
        if redis is None:
            raise InvalidInput("gateway.responses_store is redis but the server has no AGENTADAPTER_REDIS_URL; set "
                               "it or use database", param="previous_response_id", code="store_unavailable")
        return RedisResponseStore(redis, spec.responses_ttl_s)
    return DatabaseResponseStore(db, spec.responses_ttl_s)


async def save_conversation(store: ResponseStore, tenant_id: uuid.UUID, response_id: str,
                            messages: Sequence[Message], model: str) -> None:
    """Keep a response's conversation (too large a one is not kept: a follow-up sends it again)."""
    data = {"model": model, "messages": [message.to_dict() for message in messages]}
    if len(json.dumps(data)) <= _MAX_STORED_BYTES:
        await store.put(tenant_id, response_id, data)


async def load_conversation(store: ResponseStore | None, tenant_id: uuid.UUID, response_id: str) -> list[Message]:
    """The conversation of the tenant's earlier response ``response_id``; NotFound when there is none."""
    if store is None:
        raise InvalidInput("previous_response_id needs the response store, which this server's operator turned "
                           "off (gateway.responses_store); send the whole conversation in input instead",
                           param="previous_response_id", code="unsupported_parameter")
    data = await store.get(tenant_id, response_id)
    if data is None:
        raise NotFound(f"no response {response_id!r} to continue from: it does not exist, belongs to another "
                       f"organisation, or is older than {store.ttl_s:.0f} s; send the whole conversation in input")
    try:
        return coerce_messages(data.get("messages") or [])
    except InvalidRequestError as exc:  # written by this code; unreadable only if it changed shape since
        raise NotFound(f"the stored response {response_id!r} can no longer be read ({exc}); send the whole "
                       "conversation in input") from exc
