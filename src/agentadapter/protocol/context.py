"""Shared context: state that the agents of a run read, write and watch together.

Keys are strings, values JSON. Global state lives at plain keys (``"task"``, ``"plan"``); each agent
also has a private-by-convention namespace, ``agents/<name>/...``, reached through
:meth:`SharedContext.namespace` (a supervisor can still read it at its full key). Every write gets a
version from one context-wide counter that only grows (like an etcd revision), so a version is never
reused even after a delete: :meth:`SharedContext.compare_and_set` with the version you read succeeds
only if nobody wrote in between, and :meth:`SharedContext.update` wraps the read-modify-CAS retry loop
so that concurrent writers never lose an update. Every change is kept in a bounded history and
delivered to watchers (a callback or an async iterator, on one key or a prefix) in order. Values are
stored as their JSON text, so a reader never shares a mutable object with a writer, exactly as over
Redis (``redis_context.py``). :class:`InProcessSharedContext` is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Self

from agentadapter.protocol.envelope import validate_name
from agentadapter.protocol.errors import (
    InvalidValueError,
    ProtocolClosedError,
    VersionConflictError,
    WatchOverflowError,
)

__all__ = [
    "AGENT_NAMESPACE_PREFIX",
    "Change",
    "InProcessSharedContext",
    "SharedContext",
    "Versioned",
    "Watch",
    "WatchCallback",
]

logger = logging.getLogger("agentadapter.protocol.context")

#: Agent namespaces live under this prefix: ``agents/<agent>/<key>``.
AGENT_NAMESPACE_PREFIX = "agents/"


@dataclass(frozen=True, slots=True)
class Versioned:
    """A value with the version of the write that produced it (0 and None: the key does not exist)."""

    value: Any
    version: int

    @property
    def exists(self) -> bool:
        """Whether the key exists."""
        return self.version > 0


@dataclass(frozen=True, slots=True)
class Change:
    """One write to the context, as kept in the history and delivered to watchers."""

    key: str
    """The key written (relative to the namespace, for a namespaced view)."""
    op: Literal["set", "delete"]
    """What happened."""
    value: Any
    """The new value (None for a delete)."""
    version: int
    """The version the write produced."""
    writer: str | None
    """Who wrote it (the agent, for a namespaced view), if known."""
    ts: float
    """When (Unix seconds)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "key": self.key,
            "op": self.op,
            "value": self.value,
            "version": self.version,
            "writer": self.writer,
            "ts": self.ts,
        }


#: A watch callback: sync or async, called with each change in order.
WatchCallback = Callable[[Change], Any]

_CLOSED = object()


class Watch:
    """Changes to one key (or every key under a prefix), as an async iterator or fed to a callback.

    Obtained from :meth:`SharedContext.watch`; changes made after that call returns are delivered,
    in version order. ``async with`` or :meth:`close` stops it. If the consumer falls more than
    ``buffer_size`` changes behind, the iterator raises WatchOverflowError once it has drained.
    """

    def __init__(
        self,
        target: str,
        *,
        prefix: bool,
        callback: WatchCallback | None,
        buffer_size: int,
        strip: str = "",
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, not {buffer_size}")
        self.target = target
        self.prefix = prefix
        self._strip = strip
        self._buffer_size = buffer_size
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=buffer_size)
        self._closed = False
        self._overflowed = False
        self._remove: Callable[[Watch], Awaitable[None]] | None = None
        self._pump: asyncio.Task[None] | None = None
        if callback is not None:
            self._pump = self._loop.create_task(self._run_callback(callback), name=f"agentadapter-watch:{target}")

    def matches(self, key: str) -> bool:
        """Whether a change to ``key`` is delivered to this watch."""
        return key.startswith(self.target) if self.prefix else key == self.target

    def offer(self, change: Change) -> None:
        """Queue ``change`` for delivery; callable from any thread."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._push(change)
        else:
            with contextlib.suppress(RuntimeError):  # the watcher's loop is gone: nobody to tell
                self._loop.call_soon_threadsafe(self._push, change)

    def _push(self, change: Change) -> None:
        if self._closed or self._overflowed:
            return
        if self._strip:
            change = replace(change, key=change.key[len(self._strip) :])
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self._overflowed = True
            logger.warning("watch on %r overflowed (%d changes behind)", self.target, self._buffer_size)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Change:
        if self._queue.empty():
            if self._overflowed:
                raise WatchOverflowError(self.target, self._buffer_size)
            if self._closed:
                raise StopAsyncIteration
        item = await self._queue.get()
        if item is _CLOSED:
            raise StopAsyncIteration
        assert isinstance(item, Change)
        return item

    async def _run_callback(self, callback: WatchCallback) -> None:
        try:
            async for change in self:
                try:
                    result = callback(change)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("watch callback for %r failed on %s", self.target, change.key)
        except WatchOverflowError:
            logger.error("watch callback for %r fell behind and stopped; re-read the state", self.target)

    async def close(self) -> None:
        """Stop delivering; a waiting iterator ends."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_CLOSED)
        if self._remove is not None:
            await self._remove(self)
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def check_key(key: object) -> str:
    """Return ``key`` if it is a usable context key (a non-empty string up to 1024 characters)."""
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidValueError(f"context key {key!r} is not valid; use a non-empty string of at most 1024 characters")
    return key


def encode_value(key: str, value: Any) -> str:
    """Serialize a context value to JSON text, or raise InvalidValueError saying what to do."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(
            f"the value for context key {key!r} is not JSON-serializable ({exc}); store dicts, lists, "
            "strings, numbers, booleans and None (e.g. model_dump(mode='json') for pydantic models)"
        ) from exc


class SharedContext(ABC):
    """The shared-context contract, implemented in-process and on Redis."""

    def __init__(self, *, history_max: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        if history_max < 0:
            raise ValueError(f"history_max must not be negative, not {history_max}")
        self.history_max = history_max
        self._clock = clock
        self._closed = False

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and prepare (a no-op in-process)."""

    async def close(self) -> None:
        """Stop watches and release resources; the context cannot be used afterwards."""
        self._closed = True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ProtocolClosedError("shared context")

    # -- primitives each implementation provides ----------------------------------------------

    @abstractmethod
    async def get_versioned(self, key: str) -> Versioned:
        """The value and its version (``Versioned(None, 0)`` if the key does not exist)."""

    @abstractmethod
    async def _write(self, key: str, data: str, expected_version: int | None, writer: str | None) -> int:
        """Store JSON text ``data`` at ``key`` if its version is ``expected_version`` (None: any);
        return the new version or raise VersionConflictError."""

    @abstractmethod
    async def _remove(self, key: str, expected_version: int | None, writer: str | None) -> bool:
        """Delete ``key`` if its version is ``expected_version`` (None: any); False if it did not exist."""

    @abstractmethod
    async def keys(self, prefix: str = "") -> list[str]:
        """Existing keys starting with ``prefix``, sorted."""

    @abstractmethod
    async def items(self, prefix: str = "") -> dict[str, Any]:
        """Existing keys starting with ``prefix`` and their values, sorted by key."""

    @abstractmethod
    async def history(
        self, key: str | None = None, *, prefix: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[Change]:
        """Changes, oldest first: to ``key``, or under ``prefix``, or all; from ``since`` (Unix seconds);
        at most ``limit`` (the earliest ones)."""

    @abstractmethod
    async def _add_watch(self, watch: Watch) -> None:
        """Start delivering changes to ``watch``."""

    @abstractmethod
    async def _remove_watch(self, watch: Watch) -> None:
        """Stop delivering changes to ``watch``."""

    # -- the API built on them -----------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """The value at ``key``, or ``default`` if it does not exist."""
        current = await self.get_versioned(key)
        return current.value if current.exists else default

    async def set(self, key: str, value: Any, *, writer: str | None = None) -> int:
        """Store ``value`` (JSON) at ``key`` unconditionally; return the new version."""
        check_key(key)
        return await self._write(key, encode_value(key, value), None, writer)

    async def compare_and_set(self, key: str, value: Any, expected_version: int, *, writer: str | None = None) -> int:
        """Store ``value`` only if ``key`` is still at ``expected_version`` (0: must not exist).

        Returns the new version; raises VersionConflictError if another write came first.
        """
        check_key(key)
        if expected_version < 0:
            raise ValueError(f"expected_version must be 0 (absent) or a version read before, not {expected_version}")
        return await self._write(key, encode_value(key, value), expected_version, writer)

    async def delete(self, key: str, *, expected_version: int | None = None, writer: str | None = None) -> bool:
        """Delete ``key`` (only at ``expected_version``, if given); False if it did not exist."""
        check_key(key)
        return await self._remove(key, expected_version, writer)

    async def update(
        self,
        key: str,
        fn: Callable[[Any], Any],
        *,
        default: Any = None,
        writer: str | None = None,
        max_attempts: int = 100,
    ) -> Any:
        """Apply ``fn`` (sync or async) to the current value (``default`` if absent) and store the result
        with compare-and-set, retrying on conflict; return the stored value. ``fn`` may run several
        times, so it must not have side effects."""
        last_conflict: VersionConflictError | None = None
        for attempt in range(max_attempts):
            current = await self.get_versioned(key)
            new_value = fn(current.value if current.exists else default)
            if inspect.isawaitable(new_value):
                new_value = await new_value
            try:
                await self.compare_and_set(key, new_value, current.version, writer=writer)
                return new_value
            except VersionConflictError as conflict:
                last_conflict = conflict
                # Jittered backoff: writers that collided spread out instead of colliding again.
                await asyncio.sleep(random.uniform(0, min(0.05, 0.0005 * 2**attempt)))
        assert last_conflict is not None
        raise last_conflict

    async def watch(
        self,
        target: str,
        callback: WatchCallback | None = None,
        *,
        prefix: bool = False,
        buffer_size: int = 10_000,
    ) -> Watch:
        """Watch ``target`` (a key, or with ``prefix=True`` every key starting with it).

        Without ``callback`` iterate the returned Watch (``async for change in watch``); with one, it
        is called for each change in order (a sync callback runs on the event loop: keep it quick).
        """
        self._check_open()
        if not prefix:
            check_key(target)
        watch = Watch(target, prefix=prefix, callback=callback, buffer_size=buffer_size)
        await self._attach(watch)
        return watch

    async def _attach(self, watch: Watch) -> None:
        watch._remove = self._remove_watch
        await self._add_watch(watch)

    def namespace(self, agent: str) -> SharedContext:
        """A view of ``agent``'s namespace: its keys are stored under ``agents/<agent>/``."""
        validate_name(agent)
        return NamespacedContext(self, agent)


class NamespacedContext(SharedContext):
    """One agent's namespace of a shared context: keys are relative, writes are attributed to it."""

    def __init__(self, parent: SharedContext, agent: str) -> None:
        super().__init__(history_max=parent.history_max)
        self._parent = parent
        self.agent = agent
        self.key_prefix = f"{AGENT_NAMESPACE_PREFIX}{agent}/"

    def _full(self, key: str) -> str:
        return self.key_prefix + check_key(key)

    def _relative(self, change: Change) -> Change:
        return replace(change, key=change.key[len(self.key_prefix) :])

    async def close(self) -> None:
        """A view owns nothing: closing it leaves the shared context open."""

    async def get_versioned(self, key: str) -> Versioned:
        return await self._parent.get_versioned(self._full(key))

    async def _write(self, key: str, data: str, expected_version: int | None, writer: str | None) -> int:
        return await self._parent._write(self._full(key), data, expected_version, writer or self.agent)

    async def _remove(self, key: str, expected_version: int | None, writer: str | None) -> bool:
        return await self._parent._remove(self._full(key), expected_version, writer or self.agent)

    async def keys(self, prefix: str = "") -> list[str]:
        start = len(self.key_prefix)
        return [key[start:] for key in await self._parent.keys(self.key_prefix + prefix)]

    async def items(self, prefix: str = "") -> dict[str, Any]:
        start = len(self.key_prefix)
        return {key[start:]: value for key, value in (await self._parent.items(self.key_prefix + prefix)).items()}

    async def history(
        self, key: str | None = None, *, prefix: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[Change]:
        if key is not None:
            changes = await self._parent.history(self._full(key), since=since, limit=limit)
        else:
            changes = await self._parent.history(prefix=self.key_prefix + (prefix or ""), since=since, limit=limit)
        return [self._relative(change) for change in changes]

    async def watch(
        self,
        target: str,
        callback: WatchCallback | None = None,
        *,
        prefix: bool = False,
        buffer_size: int = 10_000,
    ) -> Watch:
        full_target = self.key_prefix + target if prefix else self._full(target)
        watch = Watch(full_target, prefix=prefix, callback=callback, buffer_size=buffer_size, strip=self.key_prefix)
        await self._parent._attach(watch)
        return watch

    async def _add_watch(self, watch: Watch) -> None:
        await self._parent._add_watch(watch)

    async def _remove_watch(self, watch: Watch) -> None:
        await self._parent._remove_watch(watch)

    def namespace(self, agent: str) -> SharedContext:
        return self._parent.namespace(agent)


class InProcessSharedContext(SharedContext):
    """The shared context for one process: dicts behind a lock (safe from any thread)."""

    def __init__(self, *, history_max: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        super().__init__(history_max=history_max, clock=clock)
        self._lock = threading.Lock()
        self._data: dict[str, tuple[int, str]] = {}  # key -> (version, JSON text)
        self._revision = 0
        self._history: deque[Change] = deque(maxlen=history_max)
        self._watches: list[Watch] = []

    async def close(self) -> None:
        await super().close()
        with self._lock:
            watches, self._watches = self._watches, []
        for watch in watches:
            await watch.close()

    async def get_versioned(self, key: str) -> Versioned:
        self._check_open()
        with self._lock:
            entry = self._data.get(key)
        if entry is None:
            return Versioned(None, 0)
        return Versioned(json.loads(entry[1]), entry[0])

    def _commit_locked(self, change: Change) -> None:
        # Under the lock, so that history and every watcher see changes in version order.
        if self.history_max:
            self._history.append(change)
        for watch in self._watches:
            if watch.matches(change.key):
                watch.offer(change)

    async def _write(self, key: str, data: str, expected_version: int | None, writer: str | None) -> int:
        self._check_open()
        with self._lock:
            entry = self._data.get(key)
            current = 0 if entry is None else entry[0]
            if expected_version is not None and current != expected_version:
                raise VersionConflictError(key, expected_version, current)
            self._revision += 1
            version = self._revision
            self._data[key] = (version, data)
            self._commit_locked(Change(key, "set", json.loads(data), version, writer, self._clock()))
            return version

    async def _remove(self, key: str, expected_version: int | None, writer: str | None) -> bool:
        self._check_open()
        with self._lock:
            entry = self._data.get(key)
            current = 0 if entry is None else entry[0]
            if expected_version is not None and current != expected_version:
                raise VersionConflictError(key, expected_version, current)
            if entry is None:
                return False
            del self._data[key]
            self._revision += 1
            self._commit_locked(Change(key, "delete", None, self._revision, writer, self._clock()))
            return True

    async def keys(self, prefix: str = "") -> list[str]:
        self._check_open()
        with self._lock:
            return sorted(key for key in self._data if key.startswith(prefix))

    async def items(self, prefix: str = "") -> dict[str, Any]:
        self._check_open()
        with self._lock:
            selected = sorted((key, data) for key, (_, data) in self._data.items() if key.startswith(prefix))
        return {key: json.loads(data) for key, data in selected}

    async def history(
        self, key: str | None = None, *, prefix: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[Change]:
        self._check_open()
        with self._lock:
            snapshot = list(self._history)
        return filter_changes(snapshot, key=key, prefix=prefix, since=since, limit=limit)

    async def _add_watch(self, watch: Watch) -> None:
        with self._lock:
            self._watches.append(watch)

    async def _remove_watch(self, watch: Watch) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._watches.remove(watch)


def filter_changes(
    changes: list[Change], *, key: str | None, prefix: str | None, since: float | None, limit: int
) -> list[Change]:
    """Apply :meth:`SharedContext.history`'s filters to changes in version order (shared by both contexts)."""
    selected: list[Change] = []
    for change in changes:
        if key is not None and change.key != key:
            continue
        if prefix is not None and not change.key.startswith(prefix):
            continue
        if since is not None and change.ts < since:
            continue
        selected.append(change)
        if len(selected) >= limit:
            break
    return selected
