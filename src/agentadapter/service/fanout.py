"""One Redis reader per API process for every live SSE follower of runs on workers.

A follower used to read its run's stream with its own ``XREAD BLOCK``, which holds a Redis
connection for as long as it blocks: a process served as many followers as its pool had
connections (about 100), and every idle follower kept one busy. :class:`StreamFanout` reads every
followed stream with one ``XREAD BLOCK`` on one connection of its own, and hands each follower the
entries past its own position through an in-process queue. A follower that joins while the reader
is blocked wakes it (``CLIENT UNBLOCK`` from another connection), so it waits for no timeout.

A follower that reads too slowly (its queue holds ``max_pending`` batches) is dropped with
:class:`FollowerFellBehind`; when Redis fails, every follower gets the error (their clients
reconnect with ``Last-Event-ID`` and resume) and the reader retries with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from agentadapter.redis_connections import parse_stream_id, stop_task

__all__ = ["Entry", "Follower", "FollowerFellBehind", "StreamFanout"]

logger = logging.getLogger("agentadapter.server")

Entry = tuple[bytes, dict[bytes, bytes]]
"""A stream entry as redis-py returns it: its id and its fields."""


def _stream_id(position: tuple[int, int]) -> str:
    return f"{position[0]}-{position[1]}"


class FollowerFellBehind(RuntimeError):
    """A follower did not take its entries fast enough; its client should reconnect and resume."""


@dataclass(eq=False)
class Follower:
    """One reader of one stream: the entries past ``last_id`` arrive in :attr:`queue` as batches
    (or an exception, after which nothing more arrives)."""

    key: str
    last_id: tuple[int, int] = (0, 0)
    queue: asyncio.Queue[list[Entry] | BaseException] = field(default_factory=asyncio.Queue)


class StreamFanout:
    """Reads every followed stream with one blocking ``XREAD`` and fans the entries out.

    ``client`` reads (a client that keeps one connection, blocked in ``XREAD``: the Redis owner's
    ``dedicated()`` one); ``waker`` (another client, the owner's ``commands``) sends ``CLIENT
    UNBLOCK`` when a follower joins. Both stay owned by the caller, who closes them after
    :meth:`aclose`.
    """

    def __init__(self, client: Any, waker: Any, *, block_ms: int = 5_000, count: int = 500,
                 max_pending: int = 1_000) -> None:
        self._client = client
        self._waker = waker
        self.block_ms = block_ms
        self.count = count
        self.max_pending = max_pending
        self._followers: dict[str, set[Follower]] = {}
        self._joined = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._reader_id: int | None = None
        self._blocked = False
        self._wake_sent = False
        self._wakes: set[asyncio.Task[None]] = set()

    @property
    def followers(self) -> int:
        return sum(len(group) for group in self._followers.values())

    def follow(self, key: str) -> Follower:
        """A new follower of the stream ``key``, from its start; :meth:`unfollow` it when done."""
        follower = Follower(key, queue=asyncio.Queue(self.max_pending))
        self._followers.setdefault(key, set()).add(follower)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="sse-stream-fanout")
        self._joined.set()
        self._wake()
        return follower

    def unfollow(self, follower: Follower) -> None:
        group = self._followers.get(follower.key)
        if group is not None:
            group.discard(follower)
            if not group:
                del self._followers[follower.key]

    def _wake(self) -> None:
        """Interrupt the blocked XREAD so that it starts again with the new follower's stream."""
        if not self._blocked or self._wake_sent or self._reader_id is None:
            return
        self._wake_sent = True
        task = asyncio.get_running_loop().create_task(self._unblock(self._reader_id))
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)

    async def _unblock(self, reader_id: int) -> None:
        try:
            await self._waker.client_unblock(reader_id)
        except Exception as exc:  # the new follower then waits for the XREAD's timeout
            logger.warning("could not wake the SSE stream reader (%s: %s)", type(exc).__name__, exc)

    async def _read(self) -> None:
        backoff = 0.5
        while True:
            if not self._followers:
                self._joined.clear()
                await self._joined.wait()
                continue
            since = {key: min(f.last_id for f in group) for key, group in self._followers.items()}
            streams = {key: _stream_id(position) for key, position in since.items()}
            try:
                if self._reader_id is None:
                    self._reader_id = int(await self._client.client_id())
                self._blocked, self._wake_sent = True, False
                try:
                    answer = await self._client.xread(streams, block=self.block_ms, count=self.count)
                finally:
                    self._blocked = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: every follower learns it; the reader tries again
                self._reader_id = None
                self._fail_all(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            for key, entries in answer or ():
                name = key.decode() if isinstance(key, bytes) else str(key)
                self._deliver(name, entries, since.get(name, (0, 0)))

    def _deliver(self, key: str, entries: list[Entry], since: tuple[int, int]) -> None:
        for follower in list(self._followers.get(key, ())):
            if follower.last_id < since:
                # It joined while this read was in flight, from an earlier position: the entries
                # between are not in this answer; the next read starts from its position.
                continue
            fresh = [entry for entry in entries if parse_stream_id(entry[0]) > follower.last_id]
            if not fresh:
                continue
            try:
                follower.queue.put_nowait(fresh)
            except asyncio.QueueFull:
                self.unfollow(follower)
                self._fail(follower, FollowerFellBehind(
                    f"the follower of {key} fell {self.max_pending} batches behind; reconnect to resume"))
                continue
            follower.last_id = parse_stream_id(fresh[-1][0])

    def _fail_all(self, exc: BaseException, *, lost: bool = True) -> None:
        followers = [f for group in self._followers.values() for f in group]
        if followers and lost:
            logger.warning("the SSE stream reader lost Redis (%s: %s); %d follower(s) end with an error and "
                           "their clients reconnect", type(exc).__name__, exc, len(followers))
        self._followers.clear()
        for follower in followers:
            self._fail(follower, exc)

    @staticmethod
    def _fail(follower: Follower, exc: BaseException) -> None:
        # Room for the error even in a full queue: the follower must learn why nothing more comes.
        while True:
            try:
                follower.queue.put_nowait(exc)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    follower.queue.get_nowait()

    async def aclose(self) -> None:
        await stop_task(self._reader)
        for task in list(self._wakes):
            await stop_task(task)
        self._fail_all(RuntimeError("the server is shutting down"), lost=False)
