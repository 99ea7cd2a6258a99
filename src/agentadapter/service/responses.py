"""The store of recent Responses-API answers behind ``previous_response_id``, one per tenant.

OpenAI's Responses API lets a client continue from an earlier answer by its id instead of sending
the conversation again. The gateway keeps what that needs, the conversation each response
ended (its input and its output, as neutral messages; not its ``instructions``, which OpenAI does not
carry over either), for ``gateway.responses_ttl_s`` (a day by default), in Redis when the server has
it (keys expire by themselves) or else in the service database (:mod:`agentadapter.store.stored_responses`).
Every key and row includes the tenant id, so a tenant that names another tenant's response id is told
it does not exist. ``gateway.responses_store: off`` keeps nothing: a request with
``previous_response_id`` is then refused with a clear error.

What is kept follows the tenant's compliance policy as a thread's messages do: the conversation goes
through the same storage hook (:func:`agentadapter.store.threads.stored_messages`: kept, masked or
hashed), so a follow-up continues from the masked history. Each conversation names the user who made
it, so a user's erasure finds it in either store (:func:`erase_user_responses` for Redis, where a
per-user index lists the user's keys; :func:`agentadapter.store.stored_responses.delete_user_responses`
for the database); a tenant's erasure takes every key and row naming the tenant.
"""

from __future__ import annotations

import json
import re
import time
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
from agentadapter.store.threads import stored_messages

__all__ = ["DatabaseResponseStore", "RedisResponseStore", "ResponseStore", "erase_user_responses",
           "load_conversation", "response_store", "save_conversation"]

_REDIS_PREFIX = "agentadapter:responses:"
_USER_INDEX = "by-user:"
"""The part of a user's index key after the store's prefix (a tenant id, which a data key has there, never is)."""
_MAX_STORED_BYTES = 8 * 1024 * 1024


class ResponseStore(Protocol):
    """Where conversations are kept: per tenant, for ``ttl_s`` seconds."""

    ttl_s: float

    @property
    def db(self) -> Database | None:
        """The service database, whose tenant policies say what a kept conversation's personal data becomes
        (None: kept as sent; only a store used alone, as in its tests, has none)."""

    async def put(self, tenant_id: uuid.UUID, response_id: str, data: dict[str, Any], *,
                  user_id: uuid.UUID | None = None) -> None: ...

    async def get(self, tenant_id: uuid.UUID, response_id: str) -> dict[str, Any] | None: ...


class DatabaseResponseStore:
    """Rows of ``stored_responses`` in the service database (the user is the data's ``user_id``)."""

    def __init__(self, db: Database, ttl_s: float) -> None:
        self.db = db
        self.ttl_s = ttl_s

    async def put(self, tenant_id: uuid.UUID, response_id: str, data: dict[str, Any], *,
                  user_id: uuid.UUID | None = None) -> None:
        now = datetime.now(UTC)
        async with self.db.writer() as session:
            await put_stored_response(session, tenant_id, response_id, data, now + timedelta(seconds=self.ttl_s), now)

    async def get(self, tenant_id: uuid.UUID, response_id: str) -> dict[str, Any] | None:
        async with self.db.session() as session:
            return await get_stored_response(session, tenant_id, response_id, datetime.now(UTC))


class RedisResponseStore:
    """One Redis key per response, ``agentadapter:responses:<tenant>:<response id>``, expiring by itself.

    A user's responses are also listed in a sorted set, ``agentadapter:responses:by-user:<tenant>:<user>``
    (each key scored by its expiry, the expired trimmed at each write, the set expiring after its newest
    member): the keys do not name the user, so that a response stays readable by any caller of the
    tenant, and the set is how a user's erasure finds them.
    """

    def __init__(self, redis: RedisConnections, ttl_s: float, prefix: str = _REDIS_PREFIX,
                 db: Database | None = None) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.db = db

    def _key(self, tenant_id: uuid.UUID, response_id: str) -> str:
        return f"{self.prefix}{tenant_id}:{response_id}"

    def user_index(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> str:
        """The key of the set listing the user's responses."""
        return f"{self.prefix}{_USER_INDEX}{tenant_id}:{user_id}"

    async def put(self, tenant_id: uuid.UUID, response_id: str, data: dict[str, Any], *,
                  user_id: uuid.UUID | None = None) -> None:
        key, ttl_ms = self._key(tenant_id, response_id), max(1, int(self.ttl_s * 1000))
        if user_id is None:
            await self.redis.commands.set(key, json.dumps(data), px=ttl_ms)
            return
        index, now_ms = self.user_index(tenant_id, user_id), int(time.time() * 1000)
        # One transaction: a response is never kept without its index entry (an erasure would miss it).
        async with self.redis.commands.pipeline(transaction=True) as pipe:
            pipe.set(key, json.dumps(data), px=ttl_ms)
            pipe.zadd(index, {key: now_ms + ttl_ms})
            pipe.zremrangebyscore(index, "-inf", now_ms)
            pipe.pexpire(index, ttl_ms)
            await pipe.execute()

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
        return RedisResponseStore(redis, spec.responses_ttl_s, db=db)
    return DatabaseResponseStore(db, spec.responses_ttl_s)


async def save_conversation(store: ResponseStore, tenant_id: uuid.UUID, response_id: str,
                            messages: Sequence[Message], model: str, *, user_id: uuid.UUID | None = None) -> None:
    """Keep a response's conversation, as the tenant's policy stores personal data, naming ``user_id`` (the
    caller's user) for erasure; too large a one is not kept (a follow-up sends it again)."""
    plain = [message.to_dict() for message in messages]
    if store.db is not None:
        async with store.db.session() as session:  # the policy is cached: usually no query
            plain = await stored_messages(session, tenant_id, plain)
    data: dict[str, Any] = {"model": model, "messages": plain}
    if user_id is not None:
        data["user_id"] = str(user_id)
    if len(json.dumps(data)) <= _MAX_STORED_BYTES:
        await store.put(tenant_id, response_id, data, user_id=user_id)


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


async def erase_user_responses(redis: Any, prefixes: Sequence[str], tenant_id: uuid.UUID,
                               user_id: uuid.UUID) -> int:
    """Delete the user's responses kept on Redis under ``prefixes`` (an asyncio client's keys), found by their
    per-user index, and the index; the number of keys deleted."""
    removed = 0
    for prefix in prefixes:
        pattern = f"{_escape_glob(prefix)}*{_USER_INDEX}{tenant_id}:{user_id}"
        async for index in redis.scan_iter(match=pattern, count=500):
            members = await redis.zrange(index, 0, -1)
            for start in range(0, len(members), 500):
                removed += int(await redis.delete(*members[start:start + 500]))
            removed += int(await redis.delete(index))
    return removed


def _escape_glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
