"""The process's one owner of Redis connections, and what the Redis-backed parts share.

:class:`RedisConnections` is built once at start-up from the settings (``AGENTADAPTER_REDIS_URL``,
``AGENTADAPTER_REDIS_MAX_CONNECTIONS``, ``AGENTADAPTER_REDIS_CONNECT_TIMEOUT_S``,
``AGENTADAPTER_REDIS_SOCKET_TIMEOUT_S``) - by the API server's lifespan and by each worker process's
runtime - and handed to every part that needs Redis: the run executor's cancel relay, the request
rate limiter and the auth throttle, ``/readyz``, the budget store, the response cache, the shared
breakers and rate limits, the run channel and its fan-out, the runs' protocol. It holds one
connection pool per purpose:

- ``commands``: short commands and scripts, with short timeouts so a Redis that stops answering
  fails a check fast (a budget is refused, a limit passes unchecked) instead of stalling requests;
- ``blocking``: connections held for long reads - pub/sub listeners, ``XREAD BLOCK`` - whose socket
  timeout is longer than any blocking read issued on them. Built on first use.

Both are blocking pools: past ``max_connections`` a caller waits (up to 20 s) for a free connection
rather than failing. Parts never close the owner; whoever built it closes it last, at shutdown.
Parts that are given a URL instead (library use, tests) build an owner of their own and close it.

Every part that takes "a URL or a ready client" says in its errors which Redis it means; a client
handed in has no URL, so it is described from its connection pool (never with a password).

:class:`ScriptBatch` sends the script calls that a busy process makes in one turn of its event loop in
one pipeline: one round trip and one connection checkout for all of them (the credit holds and
settlements of concurrent calls).

redis-py's ``PubSub.get_message(timeout=...)`` can swallow the ``CancelledError`` of a task that is
cancelled while it waits (the read is abandoned and ``None`` returned), so a listener looping on it
never ends and a shutdown that awaits it waits forever - a server that failed to bind its port then
ignored SIGTERM. :func:`next_pubsub_message` restores the cancellation; :func:`stop_task` bounds the
wait on any background task at shutdown.

This module is at the bottom of the layers and imports ``redis`` only when an owner is built.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from agentadapter.config import Settings

__all__ = ["BLOCKING_SOCKET_TIMEOUT_S", "RedisConnections", "ScriptBatch", "connections_of", "describe_client",
           "mask_url", "next_pubsub_message", "parse_stream_id", "stop_task"]

BLOCKING_SOCKET_TIMEOUT_S = 10.0
"""The socket timeout of the ``blocking`` pool: longer than every blocking read issued on it (the run
fan-out's 5 s ``XREAD BLOCK``, pub/sub polls of 5 s, the protocol's reads of half this)."""

logger = logging.getLogger("agentadapter.redis")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for error messages and logs)."""
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:
        return "<unparseable Redis URL>"
    if password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    where = f":{port}" if port else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{where}", parts.path, parts.query, parts.fragment))


class RedisConnections:
    """One process's Redis connection pools, one per purpose (see the module docstring).

    Building it opens nothing: connections are made on first use, so a process starts while Redis
    is away and the first command reports it. :meth:`aclose` closes every pool; call it once, after
    the parts that use it have stopped.
    """

    def __init__(self, url: str, *, max_connections: int = 100, connect_timeout_s: float = 2.0,
                 socket_timeout_s: float = 5.0, pool_timeout_s: float = 20.0) -> None:
        import redis.asyncio as aioredis

        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        self._url = url
        self.url = mask_url(url)
        """The server, password masked: for messages and logs."""
        self.max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        self.socket_timeout_s = socket_timeout_s
        self.pool_timeout_s = pool_timeout_s
        self._commands_pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=pool_timeout_s, socket_connect_timeout=connect_timeout_s,
            socket_timeout=socket_timeout_s, health_check_interval=10, decode_responses=False)
        self.commands: Any = aioredis.Redis(connection_pool=self._commands_pool)
        """The client for short commands and scripts (replies are bytes)."""
        self._blocking_pool: Any = None
        self._blocking: Any = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisConnections | None:
        """The owner for ``settings.redis_url`` and its pool settings; None when Redis is not configured."""
        if not settings.redis_url:
            return None
        return cls(settings.redis_url, max_connections=settings.redis_max_connections,
                   connect_timeout_s=settings.redis_connect_timeout_s,
                   socket_timeout_s=settings.redis_socket_timeout_s)

    @property
    def blocking(self) -> Any:
        """The client for long reads (pub/sub, ``XREAD BLOCK``); its pool is built on first use."""
        if self._blocking is None:
            import redis.asyncio as aioredis

            self._blocking_pool = aioredis.BlockingConnectionPool.from_url(
                self._url, max_connections=self.max_connections, timeout=self.pool_timeout_s,
                socket_connect_timeout=self.connect_timeout_s, socket_timeout=BLOCKING_SOCKET_TIMEOUT_S,
                health_check_interval=10, decode_responses=False)
            self._blocking = aioredis.Redis(connection_pool=self._blocking_pool)
        return self._blocking

    def dedicated(self) -> Any:
        """A client that keeps one connection of the ``blocking`` pool for itself (a reader that must
        know its connection's id, for ``CLIENT UNBLOCK``); ``aclose()`` it to give the connection back."""
        import redis.asyncio as aioredis

        return aioredis.Redis(connection_pool=self.blocking.connection_pool, single_connection_client=True)

    async def ping(self) -> None:
        """Check the server answers (raises redis-py's error otherwise); opens no new pool."""
        await self.commands.ping()

    async def aclose(self) -> None:
        """Close every pool (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self._commands_pool.aclose()
        if self._blocking_pool is not None:
            await self._blocking_pool.aclose()

    def __repr__(self) -> str:
        return f"RedisConnections({self.url!r}, max_connections={self.max_connections})"


def connections_of(redis: RedisConnections | str) -> tuple[RedisConnections, bool]:
    """``redis`` as an owner, and whether the caller owns it (True when it was built here from a URL)."""
    if isinstance(redis, str):
        return RedisConnections(redis), True
    return redis, False


def parse_stream_id(stream_id: bytes | str) -> tuple[int, int]:
    """A Redis stream id (``"1700000000000-3"``) as a comparable ``(milliseconds, sequence)`` tuple."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    millis, _, sequence = text.partition("-")
    return int(millis), int(sequence or 0)


def describe_client(client: Any) -> str:
    """``redis://host:port/db`` of a ``redis.asyncio.Redis`` client, from its connection pool."""
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


async def next_pubsub_message(pubsub: Any, timeout: float) -> Any:
    """``pubsub.get_message(timeout=timeout)``, raising ``CancelledError`` if the task was cancelled
    meanwhile (redis-py may return ``None`` instead, which would keep a listener loop alive)."""
    message = await pubsub.get_message(timeout=timeout)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return message


async def stop_task(task: asyncio.Task[Any] | None, *, timeout_s: float = 5.0) -> None:
    """Cancel ``task`` and wait for it, at most ``timeout_s`` seconds in all.

    The cancellation is repeated while the task lives (a library may swallow one); a task still
    running at the deadline is left behind with a warning rather than holding the shutdown.
    """
    if task is None or task.done():
        if task is not None and not task.cancelled() and task.exception() is not None:
            logger.warning("background task %s had failed: %r", task.get_name(), task.exception())
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not task.done():
        task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            logger.warning("background task %s did not stop within %.1f s of being cancelled; left behind",
                           task.get_name(), timeout_s)
            return
        await asyncio.wait([task], timeout=min(0.2, remaining))
    if not task.cancelled() and task.exception() is not None:
        logger.warning("background task %s failed while stopping: %r", task.get_name(), task.exception())


class ScriptBatch:
    """Lua script calls made in the same turn of the event loop, sent to Redis together in one pipeline.

    Each script still runs atomically, in the order it was called; what is saved is the per-command
    client work (a connection checkout, a send and a read each), which under load costs more CPU than
    the script itself. A call waits at most one turn of the loop for the others. A script Redis does not
    know yet (first use, or Redis lost its scripts) is loaded and that call sent again on its own.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._pending: list[tuple[Any, Sequence[Any], Sequence[Any], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run ``script`` (a registered script of :attr:`client`) with ``keys`` and ``args``; its answer."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((script, keys, args, answer))
        return await answer

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch), name="redis-script-batch")
        self._sending.add(task)  # kept until done: the loop holds only weak references to tasks
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[Any, Sequence[Any], Sequence[Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                script, keys, args, _ = batch[0]
                results: list[Any] = [await script(keys=keys, args=args)]
            else:
                from redis.exceptions import NoScriptError

                async with self.client.pipeline(transaction=False) as pipe:
                    for script, keys, args, _ in batch:
                        pipe.evalsha(script.sha, len(keys), *keys, *args)
                    results = await pipe.execute(raise_on_error=False)
                for index, (script, keys, args, _) in enumerate(batch):
                    if isinstance(results[index], NoScriptError):
                        try:
                            results[index] = await script(keys=keys, args=args)  # loads it, then runs it
                        except Exception as exc:  # the script's own error: its caller's alone
                            results[index] = exc
        except BaseException as exc:  # the connection failed (or this task was cancelled): every caller hears it
            for *_, answer in batch:
                if not answer.done():
                    answer.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, answer), result in zip(batch, results, strict=True):
            if answer.done():
                continue  # its caller was cancelled; the script ran all the same
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)
