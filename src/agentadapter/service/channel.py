"""Run events and cancel requests over Redis, between workers and every API instance.

Workers append each :class:`RunEvent` (tokens included) to the run's stream
``agentadapter:run:<id>:events`` (capped at ``event_stream_maxlen``, expiring
``event_stream_ttl_s`` after ``run_finished``); any API instance reads it to serve live SSE - all
its followers through one shared ``XREAD BLOCK`` (:class:`~agentadapter.service.fanout.StreamFanout`),
so a follower holds no Redis connection. A cancel is a key ``agentadapter:run:<id>:cancel``
(holding the reason, with a TTL) that every drive and step checks. Commands go through the
process's Redis owner's ``commands`` pool; the shared reader keeps one connection of its
``blocking`` pool (:class:`~agentadapter.redis_connections.RedisConnections`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agentadapter.orchestrator.events import RunEvent
from agentadapter.redis_connections import RedisConnections, connections_of
from agentadapter.service.fanout import StreamFanout
from agentadapter.service.worker_settings import WorkerSettings

__all__ = ["RunChannel"]

logger = logging.getLogger("agentadapter.server")


def _key(run_id: uuid.UUID | str, what: str) -> str:
    return f"agentadapter:run:{run_id}:{what}"


class RunChannel:
    """The Redis side of runs executed by workers.

    ``redis`` is the process's Redis owner (the caller keeps it) or a URL (connections of the
    channel's own, closed by :meth:`aclose`).
    """

    def __init__(self, redis: RedisConnections | str, settings: WorkerSettings) -> None:
        self.settings = settings
        self._connections, self._owns_connections = connections_of(redis)
        self._redis: Any = self._connections.commands
        self._fanout: StreamFanout | None = None
        self._fanout_client: Any = None

    async def publish(self, event: RunEvent) -> None:
        key = _key(event.run_id, "events")
        payload = json.dumps(event.to_dict(), default=str)
        await self._redis.xadd(key, {"e": payload}, maxlen=self.settings.event_stream_maxlen, approximate=True)
        if event.type == "run_finished":
            await self._redis.expire(key, self.settings.event_stream_ttl_s)

    async def request_cancel(self, run_id: uuid.UUID, reason: str) -> None:
        await self._redis.set(_key(run_id, "cancel"), reason, ex=self.settings.cancel_ttl_s)

    async def cancel_reason(self, run_id: uuid.UUID | str) -> str | None:
        value = await self._redis.get(_key(run_id, "cancel"))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def _shared_reader(self) -> StreamFanout:
        if self._fanout is None:
            # One connection of the blocking pool, blocked in XREAD up to 5 s (the pool's socket
            # timeout is longer); kept by this client so the fan-out knows its id for CLIENT UNBLOCK.
            self._fanout_client = self._connections.dedicated()
            self._fanout = StreamFanout(self._fanout_client, self._redis, block_ms=5_000)
        return self._fanout

    async def read(self, run_id: uuid.UUID, after: int, ended: Callable[[], Awaitable[bool]],
                   block_ms: int = 1000) -> AsyncIterator[RunEvent]:
        """The stream's events with ``seq > after``, then live ones until ``run_finished``.

        ``ended()`` is asked whenever nothing arrived for ``block_ms``: a run that ended without its
        ``run_finished`` reaching the stream (the reaper closed it) must not keep a reader forever.
        The entries come from the process's shared reader; a failure there (Redis away, this
        follower too slow) ends this one with the error, logged.
        """
        fanout = self._shared_reader()
        follower = fanout.follow(_key(run_id, "events"))
        try:
            while True:
                try:
                    async with asyncio.timeout(block_ms / 1000):
                        batch = await follower.queue.get()
                except TimeoutError:
                    if await ended():
                        return
                    continue
                if isinstance(batch, BaseException):
                    logger.warning("a live follower of run %s failed (%s: %s)", run_id, type(batch).__name__, batch)
                    raise batch
                for _entry_id, fields in batch:
                    data = json.loads(fields[b"e"])
                    event = RunEvent(int(data["seq"]), data["type"], data["run_id"], data["agent"],
                                     float(data["ts"]), dict(data["data"] or {}))
                    if event.seq <= after:
                        continue
                    yield event
                    if event.type == "run_finished":
                        return
        finally:
            fanout.unfollow(follower)

    async def ping(self) -> None:
        await self._redis.ping()

    async def aclose(self) -> None:
        if self._fanout is not None:
            await self._fanout.aclose()
            await self._fanout_client.aclose()  # gives its connection back to the pool
        if self._owns_connections:
            await self._connections.aclose()
