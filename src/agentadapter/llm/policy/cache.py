"""The response cache: exact-match answers for repeated deterministic requests.

The key is a hash of the normalized request — the model id as called, messages, tools, tool
choice, output schema and the settings that change the answer (not tags, metadata or timeouts).
Only deterministic requests are cached (temperature 0 or a seed) unless the caller opts in with
``cache={"response": True}``; ``{"response": False}`` opts out. A hit makes no request, is marked
``cached``, costs nothing, and a cached stream replays as a stream. Three stores share one
interface: :class:`MemoryCache` (an LRU with TTL), :class:`SQLiteCache` (a file) and
:class:`RedisCache`.

Embeddings are deterministic, so every ``LLM.embed`` call is cached when the facade has a cache: the
key covers the model id as called, the texts in order, ``dimensions`` and ``input_type``
(:func:`embedding_cache_key`); a hit is marked ``cached`` and costs nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

from agentadapter.llm.embeddings import EmbeddingRequest, EmbeddingResponse
from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.messages import Attempt, Request, Response, Usage, part_from_dict, part_to_dict
from agentadapter.private_files import private_directory, private_sqlite_file
from agentadapter.redis_connections import RedisConnections, connections_of

KEY_VERSION = "v1"
"""Part of every key: bump it when the key or the stored shape changes."""


class ResponseCache(Protocol):
    """Bytes by key, with a time to live."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...


class MemoryCache:
    """An in-process LRU with per-entry expiry."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    async def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            expires, value = found
            if expires < time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl_s, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class SQLiteCache:
    """A cache file shared by the processes of one machine (WAL mode, busy timeout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Cached responses are tenants' data: a new directory 0700, the file (and its -wal/-shm) 0600.
        private_directory(self.path.parent, tighten=False)
        private_sqlite_file(self.path)
        self._local = threading.local()
        with self._connect() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS responses "
                "(key TEXT PRIMARY KEY, expires REAL NOT NULL, value BLOB NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
        return connection

    def _get(self, key: str) -> bytes | None:
        row = self._connect().execute("SELECT expires, value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if row[0] < time.time():
            self._connect().execute("DELETE FROM responses WHERE key = ?", (key,))
            return None
        return bytes(row[1])

    def _set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._connect().execute(
            "INSERT OR REPLACE INTO responses (key, expires, value) VALUES (?, ?, ?)", (key, time.time() + ttl_s, value)
        )

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, key)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await asyncio.to_thread(self._set, key, value, ttl_s)


class RedisCache:
    """A cache shared by every process that reaches the Redis server.

    ``redis`` is the process's Redis owner (:class:`~agentadapter.redis_connections.RedisConnections`), whose
    command pool it uses, or a URL (an owner is built for the cache and closed by :meth:`aclose`).
    """

    def __init__(self, redis: RedisConnections | str, *, prefix: str = "agentadapter:cache:") -> None:
        try:
            self.connections, self._owns_connections = connections_of(redis)
        except ImportError as exc:  # pragma: no cover - the redis extra is part of the dev set-up
            raise ConfigurationError(
                "the Redis cache needs the redis extra: pip install 'agentadapter[redis]'"
            ) from exc
        self.client: Any = self.connections.commands
        self.prefix = prefix

    async def aclose(self) -> None:
        """Close the connections if the cache built them (from a URL)."""
        if self._owns_connections:
            await self.connections.aclose()

    async def get(self, key: str) -> bytes | None:
        value = await self.client.get(self.prefix + key)
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self.client.set(self.prefix + key, value, px=max(1, int(ttl_s * 1000)))


def cacheable(request: Request) -> bool:
    """Deterministic requests only, unless the caller opted in or out."""
    choice = request.cache.response
    if choice is not None:
        return choice
    return request.temperature == 0 or request.seed is not None


def cache_key(model: str, request: Request) -> str:
    """A stable hash of what determines the answer."""
    payload = {
        "v": KEY_VERSION,
        "model": model,
        "messages": [m.to_dict() for m in request.messages],
        "tools": [[t.name, t.description, t.parameters] for t in request.tools],
        "tool_choice": request.tool_choice,
        "parallel_tool_calls": request.parallel_tool_calls,
        "output": request.output.json_schema if request.output is not None else None,
        "settings": [request.temperature, request.top_p, request.max_tokens, request.stop, request.seed,
                     request.reasoning_effort, request.api],
        "extra_body": request.extra_body,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_json_default).encode()
    return hashlib.sha256(encoded).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot put a {type(value).__name__} in a cache key")


def dump_response(response: Response) -> bytes:
    """The stored form of a response (without its output object: it is re-validated on a hit)."""
    return json.dumps({
        "id": response.id,
        "provider": response.provider,
        "model": response.model,
        "parts": [part_to_dict(p) for p in response.parts],
        "finish_reason": response.finish_reason,
        "usage": {k: v for k, v in response.usage.to_dict().items() if k != "total_tokens"},
        "provider_details": response.provider_details,
    }, separators=(",", ":")).encode()


def load_response(value: bytes, *, started: float) -> Response:
    """A cached response, marked as such: no cost, and one attempt named ``cache``."""
    data = json.loads(value)
    return Response(
        id=data["id"],
        provider=data["provider"],
        model=data["model"],
        parts=[part_from_dict(p) for p in data["parts"]],
        finish_reason=data["finish_reason"],
        usage=Usage(**data["usage"]),
        cost_usd=0.0,
        cached=True,
        attempts=[Attempt("cache", latency_ms=(time.perf_counter() - started) * 1000.0)],
        provider_details=data.get("provider_details"),
    )


def embedding_cache_key(model: str, request: EmbeddingRequest) -> str:
    """A stable hash of what determines an embedding call's vectors."""
    payload = {"v": KEY_VERSION, "kind": "embeddings", "model": model, "inputs": request.inputs,
               "dimensions": request.dimensions, "input_type": request.input_type, "extra_body": request.extra_body}
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_json_default).encode()
    return hashlib.sha256(encoded).hexdigest()


def dump_embedding(response: EmbeddingResponse) -> bytes:
    """The stored form of an embedding response (vectors, model, provider, the tokens it took)."""
    return json.dumps({"model": response.model, "provider": response.provider, "vectors": response.vectors,
                       "input_tokens": response.usage.input_tokens}, separators=(",", ":")).encode()


def load_embedding(value: bytes, *, started: float) -> EmbeddingResponse:
    """A cached embedding response, marked as such: no cost, and one attempt named ``cache``."""
    data = json.loads(value)
    return EmbeddingResponse(
        model=data["model"], provider=data["provider"], vectors=data["vectors"],
        usage=Usage(input_tokens=data["input_tokens"]), cost_usd=0.0, cached=True,
        attempts=[Attempt("cache", latency_ms=(time.perf_counter() - started) * 1000.0)],
    )


def create_cache(backend: str, *, data_dir: Path, redis_url: str | None,
                 redis: RedisConnections | None = None) -> ResponseCache | None:
    """The store named by the config's ``cache.backend``; a ``redis`` cache uses the process's Redis
    owner when given one, else connections of its own to ``redis_url``."""
    if backend == "off":
        return None
    if backend == "memory":
        return MemoryCache()
    if backend == "sqlite":
        return SQLiteCache(private_directory(data_dir) / "response-cache.db")
    if backend == "redis":
        if redis is not None:
            return RedisCache(redis)
        if not redis_url:
            raise ConfigurationError("cache backend 'redis' needs AGENTADAPTER_REDIS_URL (e.g. redis://localhost:6379/0)")
        return RedisCache(redis_url)
    raise ConfigurationError(f"unknown cache backend {backend!r}; use memory, sqlite, redis or off")
