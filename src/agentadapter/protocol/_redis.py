"""What the Redis implementations of the bus, registry and context share: one client and a key layout.

A :class:`RedisLink` is a ``redis.asyncio`` client plus the namespace its keys live in. Every key
starts with ``<key_prefix>:{<namespace>}:`` - the braces are a Redis Cluster hash tag, so all keys of
one namespace (one run) land in the same slot and the Lua scripts may touch several of them. Redis
failures are translated into :class:`~agentadapter.protocol.errors.ProtocolConnectionError` at this
edge, with the URL (password masked) and what to do. This module imports ``redis``; it is only
imported when a Redis implementation is used.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentadapter.protocol.errors import ProtocolConnectionError
from agentadapter.redis_connections import describe_client, mask_url, parse_stream_id

__all__ = ["RedisLink", "mask_url", "parse_stream_id", "translate_errors"]


class RedisLink:
    """A Redis client and the key prefix of one namespace, shared by the bus, registry and context.

    Pass a URL (the link creates and owns the client, with a pool of up to ``max_connections``) or
    an existing ``redis.asyncio.Redis`` created with ``decode_responses=False`` (the caller keeps
    owning it). Every blocked reader (a handler, a waiting ``get_messages``) holds a connection.
    """

    def __init__(
        self,
        client_or_url: aioredis.Redis | str,
        *,
        namespace: str = "default",
        key_prefix: str = "agentadapter",
        max_connections: int = 100,
    ) -> None:
        if isinstance(client_or_url, str):
            self.url = mask_url(client_or_url)
            # A blocking pool: past max_connections a command waits for a free connection (up to
            # 20 s) instead of failing, so a burst of concurrent requests queues rather than errors.
            pool = aioredis.BlockingConnectionPool.from_url(
                client_or_url, max_connections=max_connections, timeout=20, decode_responses=False
            )
            self.client = aioredis.Redis.from_pool(pool)
            self._owns_client = True
        else:
            kwargs = client_or_url.connection_pool.connection_kwargs
            self.url = describe_client(client_or_url)
            self.client = client_or_url
            self._owns_client = False
            if kwargs.get("decode_responses"):
                raise ValueError("pass a Redis client created with decode_responses=False (the protocol decodes)")
        self.namespace = namespace
        self.key_prefix = key_prefix
        # A blocking read must end before the client's socket timeout (redis-py 8 defaults it to
        # 5 s), or the client reports a dead connection instead of an empty read.
        socket_timeout = self.client.connection_pool.connection_kwargs.get("socket_timeout")
        self.max_block_s = 5.0 if not socket_timeout else max(0.05, float(socket_timeout) / 2)
        self.base = f"{key_prefix}:{{{namespace}}}"
        self._users = 0

    @property
    def commands(self) -> Any:
        """The client, typed loosely: with decode_responses=False every reply is bytes, which
        redis-py's annotations (unions of bytes and str for either setting) cannot express."""
        return self.client

    def key(self, *parts: str) -> str:
        """The full key for ``parts`` under this namespace (``base:part1:part2``)."""
        return ":".join((self.base, *parts))

    def register_script(self, source: str) -> Any:
        """A callable Lua script (EVALSHA, loading it on first use or after a server restart)."""
        return self.client.register_script(source)

    def retain(self) -> None:
        """Count one more component using this link (it is closed when the last one releases it)."""
        self._users += 1

    async def release(self) -> None:
        """One component is done with the link; close the client if it is ours and nobody else uses it."""
        self._users -= 1
        if self._users <= 0 and self._owns_client:
            await self.client.aclose()

    async def ping(self) -> None:
        """Check the server answers; raise ProtocolConnectionError otherwise."""
        try:
            await self.client.ping()
        except RedisError as exc:
            raise ProtocolConnectionError(self.url, str(exc) or type(exc).__name__) from exc

    async def purge(self) -> int:
        """Delete every key of this namespace (all components); return how many were deleted."""
        deleted = 0
        pattern = self.base.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
        pattern = pattern.replace("[", "\\[").replace("]", "\\]") + ":*"
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await self.client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await self.client.unlink(*batch)
        return deleted


class _HasLink(Protocol):
    _link: RedisLink


P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=_HasLink)


def translate_errors(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Decorate a method of a Redis component: connection failures become ProtocolConnectionError."""

    @functools.wraps(method)
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise ProtocolConnectionError(self._link.url, str(exc) or type(exc).__name__) from exc

    return wrapper
