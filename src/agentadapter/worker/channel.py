"""Run events and cancel requests over Redis, between workers and every API instance.

Workers append each :class:`RunEvent` (tokens included) to the run's stream
``agentadapter:run:<id>:events`` (capped at ``event_stream_maxlen``, expiring
``event_stream_ttl_s`` after ``run_finished``); any API instance reads it with ``XREAD BLOCK`` to
serve live SSE. A cancel is a key ``agentadapter:run:<id>:cancel`` (holding the reason, with a TTL)
that every drive and step checks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agentadapter.orchestrator.events import RunEvent
from agentadapter.worker.settings import WorkerSettings

__all__ = ["RunChannel"]


def _key(run_id: uuid.UUID | str, what: str) -> str:
    return f"agentadapter:run:{run_id}:{what}"


class RunChannel:
    """The Redis side of runs executed by workers."""

    def __init__(self, url: str, settings: WorkerSettings) -> None:
        import redis.asyncio as redis_asyncio

        self.settings = settings
        self._redis: Any = redis_asyncio.Redis.from_url(url)

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

    async def read(self, run_id: uuid.UUID, after: int, ended: Callable[[], Awaitable[bool]],
                   block_ms: int = 1000) -> AsyncIterator[RunEvent]:
        """The stream's events with ``seq > after``, then live ones until ``run_finished``.

        ``ended()`` is asked whenever nothing arrived for ``block_ms``: a run that ended without its
        ``run_finished`` reaching the stream (the reaper closed it) must not keep a reader forever.
        """
        key = _key(run_id, "events")
        last_id = "0-0"
        while True:
            answer = await self._redis.xread({key: last_id}, block=block_ms, count=500)
            if not answer:
                if await ended():
                    return
                continue
            for entry_id, fields in answer[0][1]:
                last_id = entry_id
                data = json.loads(fields[b"e"] if b"e" in fields else fields["e"])
                event = RunEvent(int(data["seq"]), data["type"], data["run_id"], data["agent"], float(data["ts"]),
                                 dict(data["data"] or {}))
                if event.seq <= after:
                    continue
                yield event
                if event.type == "run_finished":
                    return

    async def ping(self) -> None:
        await self._redis.ping()

    async def aclose(self) -> None:
        await self._redis.aclose()
