"""The shared context on Redis: a hash of versioned values, a revision counter and a change stream.

Layout under the namespace's ``...:ctx`` prefix: ``data`` (a hash: key -> ``"<version>:<JSON>"``, so
one HGET returns value and version together), ``rev`` (the context-wide revision counter every write
increments, so versions are never reused) and ``log`` (a stream with one entry per change). A write is
one Lua script: it checks the expected version (compare-and-set), bumps the revision, stores the
value and appends the change to the log, atomically - so concurrent writers in any number of processes
never lose an update. The change log is the history, and it also feeds watches: one reader task per
context instance follows it with a blocking XREAD and hands each change to the matching local
watches. A stream rather than pub/sub because a reader that blinks (reconnects) resumes from the
last entry it saw instead of silently missing changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from agentadapter.protocol._redis import RedisLink, parse_stream_id, translate_errors
from agentadapter.protocol.bus import cancel_and_wait
from agentadapter.protocol.context import Change, SharedContext, Versioned, Watch, filter_changes
from agentadapter.protocol.errors import VersionConflictError

__all__ = ["RedisSharedContext"]

logger = logging.getLogger("agentadapter.protocol.redis_context")

# ARGV: base, key, data (JSON, '' for a delete), expected version ('' for any), writer, ts, log maxlen,
#       ts in ms. Returns {1, new version} on success, {0, current version} on conflict, {2, 0} when
#       deleting a missing key. Log ids are the writers' times made monotonic (see at_or_after).
_WRITE = """
local function at_or_after(key, ms)
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #last > 0 then
    local last_ms = string.sub(last[1][1], 1, string.find(last[1][1], '-', 1, true) - 1)
    if tonumber(last_ms) > tonumber(ms) then ms = last_ms end
  end
  return ms .. '-*'
end
local base, key, data, expected, writer, ts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local current = redis.call('HGET', base .. ':data', key)
local version = 0
if current then version = tonumber(string.sub(current, 1, string.find(current, ':', 1, true) - 1)) end
if expected ~= '' and tonumber(expected) ~= version then return {0, version} end
local op = 'set'
if data == '' then
  if not current then return {2, 0} end
  op = 'delete'
end
local revision = redis.call('INCR', base .. ':rev')
if op == 'set' then
  redis.call('HSET', base .. ':data', key, revision .. ':' .. data)
else
  redis.call('HDEL', base .. ':data', key)
end
redis.call('XADD', base .. ':log', 'MAXLEN', '~', ARGV[7], at_or_after(base .. ':log', ARGV[8]),
  'k', key, 'o', op, 'v', data, 'n', revision, 'w', writer, 't', ts)
return {1, revision}
"""


def _decode_entry(fields: dict[bytes, bytes]) -> Change:
    op: Literal["set", "delete"] = "delete" if fields[b"o"] == b"delete" else "set"
    writer = fields[b"w"].decode()
    return Change(
        key=fields[b"k"].decode(),
        op=op,
        value=json.loads(fields[b"v"]) if op == "set" else None,
        version=int(fields[b"n"]),
        writer=writer or None,
        ts=float(fields[b"t"]),
    )


class _WatchSlot:
    """A registered watch and the log position after which it receives changes."""

    __slots__ = ("early", "start", "watch")

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.start: tuple[int, int] | None = None  # None while the log's tail is being read
        self.early: list[tuple[tuple[int, int], Change]] = []


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class RedisSharedContext(SharedContext):
    """The shared context on Redis (see the module docstring). Use it from one event loop."""

    def __init__(
        self,
        redis: RedisLink | str,
        *,
        namespace: str = "default",
        history_max: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(history_max=history_max, clock=clock)
        self._link = redis if isinstance(redis, RedisLink) else RedisLink(redis, namespace=namespace)
        self._link.retain()
        self._client = self._link.commands
        self._base = self._link.key("ctx")
        self._write_script = self._link.register_script(_WRITE)
        # Watches need the log even when no history is wanted: keep a small tail then.
        self._log_max = str(max(history_max, 1000))
        self._watches: list[_WatchSlot] = []
        self._reader: asyncio.Task[None] | None = None
        self._reader_position: bytes | str = "0-0"

    @property
    def link(self) -> RedisLink:
        """The Redis client and namespace this context uses."""
        return self._link

    @translate_errors
    async def start(self) -> None:
        await self._link.ping()

    async def close(self) -> None:
        if self._closed:
            return
        await super().close()
        slots, self._watches = self._watches, []
        for slot in slots:
            slot.watch._remove = None
            await slot.watch.close()
        await self._stop_reader()
        await self._link.release()

    @translate_errors
    async def get_versioned(self, key: str) -> Versioned:
        self._check_open()
        raw = await self._client.hget(f"{self._base}:data", key)
        if raw is None:
            return Versioned(None, 0)
        version, _, data = raw.partition(b":")
        return Versioned(json.loads(data), int(version))

    async def _run_write(self, key: str, data: str, expected_version: int | None, writer: str | None) -> list[Any]:
        self._check_open()
        now = self._clock()
        result: list[Any] = await self._write_script(
            args=[
                self._base,
                key,
                data,
                "" if expected_version is None else expected_version,
                writer or "",
                repr(now),
                self._log_max,
                int(now * 1000),
            ]
        )
        if int(result[0]) == 0:
            assert expected_version is not None
            raise VersionConflictError(key, expected_version, int(result[1]))
        return result

    @translate_errors
    async def _write(self, key: str, data: str, expected_version: int | None, writer: str | None) -> int:
        return int((await self._run_write(key, data, expected_version, writer))[1])

    @translate_errors
    async def _remove(self, key: str, expected_version: int | None, writer: str | None) -> bool:
        return int((await self._run_write(key, "", expected_version, writer))[0]) == 1

    async def _scan(self, prefix: str) -> list[tuple[str, bytes]]:
        found: list[tuple[str, bytes]] = []
        async for field, raw in self._client.hscan_iter(f"{self._base}:data", match=_glob_escape(prefix) + "*"):
            found.append((field.decode(), raw))
        found.sort()
        return found

    @translate_errors
    async def keys(self, prefix: str = "") -> list[str]:
        self._check_open()
        return [key for key, _ in await self._scan(prefix)]

    @translate_errors
    async def items(self, prefix: str = "") -> dict[str, Any]:
        self._check_open()
        return {key: json.loads(raw.partition(b":")[2]) for key, raw in await self._scan(prefix)}

    @translate_errors
    async def history(
        self, key: str | None = None, *, prefix: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[Change]:
        self._check_open()
        if not self.history_max:
            return []
        # Log ids are write times made monotonic: never earlier than the write, so start at `since`.
        start = "-" if since is None else str(max(0, int(since * 1000)))
        selected: list[Change] = []
        log = f"{self._base}:log"
        while len(selected) < limit:
            page = await self._client.xrange(log, start, "+", count=1000)
            if not page:
                break
            changes = [_decode_entry(fields) for _, fields in page]
            selected.extend(filter_changes(changes, key=key, prefix=prefix, since=since, limit=limit - len(selected)))
            millis, sequence = parse_stream_id(page[-1][0])
            start = f"{millis}-{sequence + 1}"
            if len(page) < 1000:
                break
        return selected

    # -- watches -------------------------------------------------------------------------------

    @translate_errors
    async def _add_watch(self, watch: Watch) -> None:
        # Register first, then read the log's tail: changes after the tail reach the watch. Changes
        # the reader dispatches while the tail is being read are held and filtered by it afterwards.
        slot = _WatchSlot(watch)
        self._watches.append(slot)
        latest = await self._client.xrevrange(f"{self._base}:log", "+", "-", count=1)
        tail: bytes | str = latest[0][0] if latest else "0-0"
        slot.start = parse_stream_id(tail)
        for position, change in slot.early:
            if position > slot.start:
                watch.offer(change)
        slot.early.clear()
        if self._reader is None or self._reader.done():
            self._reader_position = tail
            self._reader = asyncio.create_task(self._read_log(), name=f"agentadapter-context-watch:{self._base}")

    async def _remove_watch(self, watch: Watch) -> None:
        self._watches = [slot for slot in self._watches if slot.watch is not watch]
        if not self._watches:
            await self._stop_reader()

    async def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            await cancel_and_wait(reader)

    async def _read_log(self) -> None:
        log = f"{self._base}:log"
        while self._watches and not self._closed:
            try:
                batches = await self._client.xread(
                    {log: self._reader_position}, count=500, block=int(min(1.0, self._link.max_block_s) * 1000)
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the watch reader of %s failed; retrying", self._base)
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in batches or ():
                for entry_id, fields in entries:
                    self._reader_position = entry_id
                    position = parse_stream_id(entry_id)
                    try:
                        change = _decode_entry(fields)
                    except (KeyError, ValueError):
                        logger.warning("unreadable change %s in %s; skipped", entry_id, log)
                        continue
                    for slot in self._watches:
                        if not slot.watch.matches(change.key):
                            continue
                        if slot.start is None:
                            slot.early.append((position, change))
                        elif position > slot.start:
                            slot.watch.offer(change)
