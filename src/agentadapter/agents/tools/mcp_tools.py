"""MCP servers as tool sources: their tools become agent tools, through the official ``mcp`` SDK.

An :class:`MCPServer` is one server, reached over stdio (:meth:`MCPServer.stdio`: the SDK starts
the command as a subprocess) or streamable HTTP (:meth:`MCPServer.http`). Its lifecycle:

- **start**: on first use (or :meth:`MCPServer.start`). The SDK's ``Client`` lives inside one owner
  task for the life of the connection, because the SDK's cancel scopes must be entered and left by
  the same task; calls from other tasks of the same loop go through it directly, calls from
  another event loop (``agent.run_sync``) are handed to the owner's loop.
- **list tools**: :meth:`MCPServer.tools` lists them (following pagination) and returns agent tools
  named ``<prefix>__<tool>`` (the prefix is the server's name unless ``tool_prefix`` says otherwise;
  characters a model's tool name cannot hold become ``_``; over-long names are shortened with a
  hash). Each tool's JSON schema and description are passed through unchanged; arguments are
  validated by the server, whose errors come back to the model.
- **call**: a tool result's text (and a note for images, audio and resources) goes to the model,
  capped at ``max_result_chars`` with the cut stated; a result flagged ``isError`` and every failure
  become :class:`~agentadapter.agents.tools.errors.MCPToolError`, which the agent loop hands to
  the model as an error result.
- **restart on crash**: when the connection drops (the process exited, the HTTP server went
  away), the server is restarted at once. A call that was in flight is reported to the model as
  possibly not done, except for tools the server marks read-only or idempotent, which are re-sent
  once. After ``max_restarts`` consecutive failures the server stays down until :meth:`restart`.
- **close**: :meth:`MCPServer.close`, or ``async with MCPServer...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TextIO, TypeVar, cast

try:
    import anyio
    import httpx2
    from mcp import Client, StdioServerParameters
    from mcp import types as mcp_types
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError("MCP tools need the official MCP SDK: pip install 'agentadapter[tools]'") from exc

from agentadapter.agents.tools._text import cap_text
from agentadapter.agents.tools.decorator import FunctionTool
from agentadapter.agents.tools.errors import MCPToolError
from agentadapter.agents.tools.pinned_http import PinnedTransport
from agentadapter.agents.tools.registry import ToolRegistry
from agentadapter.agents.tools.ssrf import AddressPolicy, Resolver
from agentadapter.llm.errors import ConfigurationError
from agentadapter.observability.logging import get_logger

__all__ = ["MCPOptions", "MCPServer", "mcp_tool_name"]

logger = get_logger("agentadapter.tools.mcp")

T = TypeVar("T")

_CONNECTION_LOST = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError,
                    httpx2.TransportError)
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class MCPOptions:
    """How an :class:`MCPServer` is used (the same for every transport)."""

    tool_prefix: str | None = None
    """Prefix of the agent tools' names (``<prefix>__<tool>``); None: the server's name; "": none."""
    include: tuple[str, ...] | None = None
    """Only these tools (by their MCP names); None: all."""
    exclude: tuple[str, ...] = ()
    call_timeout_s: float = 60.0
    """Seconds a tool call may take before the model is told it timed out."""
    connect_timeout_s: float = 30.0
    """Seconds to start the server and complete the MCP handshake."""
    max_restarts: int = 3
    """Consecutive restarts after crashes before the server is left down."""
    max_result_chars: int = 20_000
    """Characters of a tool result sent to the model."""


def mcp_tool_name(prefix: str, name: str, taken: Sequence[str] = ()) -> str:
    """The agent tool name for MCP tool ``name``: ``prefix__name``, made valid and unique (1-64 of
    ``[A-Za-z0-9_-]``; a hash suffix shortens long names and separates collisions)."""
    raw = f"{prefix}__{name}" if prefix else name
    cleaned = _NAME_BAD.sub("_", raw) or "tool"
    if len(cleaned) > 64 or cleaned in taken:
        digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[:55]}_{digest}"
    return cleaned


@dataclass(eq=False)
class _Connection:
    client: Client
    task: asyncio.Task[None]
    stop: asyncio.Event
    loop: asyncio.AbstractEventLoop
    dead: bool = False


@dataclass(eq=False)
class MCPServer:
    """One MCP server: its tools as agent tools, its process or session kept alive and restarted."""

    name: str
    """Names the server in tool names, errors and logs."""
    target: StdioServerParameters | str
    """How to reach it: the command to start (stdio) or the streamable-HTTP endpoint URL."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """HTTP headers sent with every request (e.g. Authorization); HTTP only."""
    options: MCPOptions = field(default_factory=MCPOptions)
    errlog: TextIO | None = None
    """Where a stdio server's stderr goes (default: this process's stderr)."""
    address_policy: AddressPolicy | None = None
    """HTTP only: connect only to addresses these rules allow, checked on the address connected to
    (:class:`~agentadapter.agents.tools.pinned_http.PinnedTransport`); None: any address."""
    resolver: Resolver | None = None
    """How the host's name is resolved under ``address_policy`` (default: the system's resolver)."""
    _conn: _Connection | None = field(default=None, init=False, repr=False)
    _listed: list[mcp_types.Tool] | None = field(default=None, init=False, repr=False)
    _failures: int = field(default=0, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    _locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name or _NAME_BAD.search(self.name):
            raise ConfigurationError(
                f"an MCP server needs a name made of letters, digits, '_' or '-', not {self.name!r}"
            )

    # ------------------------------------------------------------------------------ building

    @classmethod
    def stdio(cls, name: str, command: str, args: Sequence[str] = (), *, env: Mapping[str, str] | None = None,
              cwd: str | None = None, options: MCPOptions | None = None, errlog: TextIO | None = None) -> MCPServer:
        """A server started as a subprocess speaking MCP on stdin/stdout. ``env`` is added to a minimal
        inherited environment (the SDK's default: HOME, PATH, ...)."""
        params = StdioServerParameters(command=command, args=list(args), env=dict(env) if env else None, cwd=cwd)
        return cls(name, params, options=options or MCPOptions(), errlog=errlog)

    @classmethod
    def http(cls, name: str, url: str, *, headers: Mapping[str, str] | None = None,
             options: MCPOptions | None = None) -> MCPServer:
        """A server reached over streamable HTTP at ``url`` (usually ending in ``/mcp``)."""
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"MCP server {name!r}: {url!r} is not an http(s) URL")
        return cls(name, url, headers=dict(headers or {}), options=options or MCPOptions())

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> MCPServer:
        """From data: ``{name, command, args, env, cwd}`` or ``{name, url, headers}``, plus any
        :class:`MCPOptions` field."""
        option_names = {f.name for f in fields(MCPOptions)}
        values = {k: (tuple(v) if k in ("include", "exclude") and v is not None else v)
                  for k, v in spec.items() if k in option_names}
        options = MCPOptions(**cast(dict[str, Any], values))
        name = str(spec.get("name") or "")
        if spec.get("command"):
            return cls.stdio(name, str(spec["command"]), [str(a) for a in spec.get("args") or []],
                             env=spec.get("env"), cwd=spec.get("cwd"), options=options)
        if spec.get("url"):
            return cls.http(name, str(spec["url"]), headers=spec.get("headers"), options=options)
        raise ConfigurationError(f"MCP server {name!r} needs either 'command' (stdio) or 'url' (streamable HTTP)")

    @property
    def transport(self) -> str:
        return "stdio" if isinstance(self.target, StdioServerParameters) else "http"

    def _where(self) -> str:
        target = self.target
        if isinstance(target, StdioServerParameters):
            return f"command {' '.join([target.command, *target.args])!r}"
        return f"URL {target}"

    # ------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> MCPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the server (or connect) and complete the MCP handshake; a no-op when running."""
        await self._on_owner_loop(self._connection)

    async def restart(self) -> None:
        """Stop and start again, clearing the crash count (after fixing what made it crash)."""
        self._failures = 0
        self._closed = False

        async def again() -> None:
            conn = self._conn
            if conn is not None:
                conn.dead = True
            await self._connection()

        await self._on_owner_loop(again)

    async def close(self) -> None:
        """Stop the server (stdio) or end the session (HTTP). The object can be started again."""
        conn, self._conn = self._conn, None
        self._listed = None
        if conn is None:
            return
        if conn.loop.is_closed():
            return
        if conn.loop is asyncio.get_running_loop():
            await self._shutdown(conn)
        elif conn.loop.is_running():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._shutdown(conn), conn.loop))

    @property
    def running(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.dead and not conn.task.done()

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        for other in [known for known in self._locks if known.is_closed()]:
            del self._locks[other]
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def _on_owner_loop(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` on the loop that owns the connection (a connection cannot change loops)."""
        conn = self._conn
        here = asyncio.get_running_loop()
        if conn is not None and conn.loop is not here:
            if conn.loop.is_running() and not conn.loop.is_closed():
                async def on_owner() -> T:
                    return await work()

                return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(on_owner(), conn.loop))
            # Its loop is gone (and with it the owner task): start afresh here.
            self._conn = None
        return await work()

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.dead and not conn.task.done():
            return conn
        async with self._lock():
            conn = self._conn
            if conn is not None and not conn.dead and not conn.task.done():
                return conn
            if self._closed:
                raise MCPToolError(f"the MCP server {self.name!r} stopped {self._failures} times in a row and is "
                                   "left down; fix it, then call its restart()", reason="gave_up")
            if conn is not None:
                self._conn = None
                await self._shutdown(conn)
            self._conn = await self._open()
            return self._conn

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Client] = loop.create_future()
        stop = asyncio.Event()
        task = loop.create_task(self._own(ready, stop), name=f"mcp-server:{self.name}")
        try:
            client = await asyncio.wait_for(asyncio.shield(ready), self.options.connect_timeout_s)
        except asyncio.CancelledError:  # our caller gave up: do not leave a server starting unowned
            stop.set()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise
        except TimeoutError:
            stop.set()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise MCPToolError(f"the MCP server {self.name!r} ({self._where()}) did not complete the MCP handshake "
                               f"within {self.options.connect_timeout_s:g} s", reason="connect_timeout") from None
        except Exception as exc:
            with contextlib.suppress(BaseException):
                await task
            cause = _leaf(exc)
            raise MCPToolError(f"cannot start or reach the MCP server {self.name!r} ({self._where()}): "
                               f"{type(cause).__name__}: {cause}", reason="connect") from exc
        logger.info("MCP server %s connected (%s, protocol %s)", self.name, self.transport, client.protocol_version)
        return _Connection(client, task, stop, loop)

    def _client(self) -> contextlib.AbstractAsyncContextManager[Client]:
        target = self.target
        if isinstance(target, StdioServerParameters):
            return Client(stdio_client(target, errlog=self.errlog or _stderr()))
        if not self.headers and self.address_policy is None:
            return Client(target)
        transport = PinnedTransport(self.address_policy, self.resolver) if self.address_policy is not None else None
        return _http_client(target, dict(self.headers), transport)

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """The owner task: enters the SDK client, holds it until told to stop, leaves it."""
        try:
            async with self._client() as client:
                ready.set_result(client)
                await stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            else:  # a server that crashed may make the SDK's teardown complain; it is gone either way
                logger.debug("MCP server %s: error while closing its connection: %r", self.name, exc)
            if not isinstance(exc, Exception):
                raise

    async def _shutdown(self, conn: _Connection) -> None:
        conn.dead = True
        conn.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(conn.task), 10.0)
        except TimeoutError:
            conn.task.cancel()
            with contextlib.suppress(BaseException):
                await conn.task
        except BaseException as exc:  # already reported by the owner task
            if isinstance(exc, asyncio.CancelledError) and not conn.task.cancelled():
                raise
            logger.debug("MCP server %s stopped with %r", self.name, exc)

    async def _lost(self, conn: _Connection, what: str) -> str:
        """The connection dropped: restart now (within the limit); the words for the model."""
        conn.dead = True
        self._failures += 1
        if self._failures > self.options.max_restarts:
            self._closed = True
            with contextlib.suppress(Exception):
                await self._shutdown(conn)
            return (f"it has stopped {self._failures} times in a row and is not restarted again (operators: fix it, "
                    "then call restart())")
        try:
            await self._connection()
        except MCPToolError as exc:
            return f"restarting it failed ({exc.message})"
        logger.warning("MCP server %s stopped during %s; restarted (%d of %d)", self.name, what, self._failures,
                       self.options.max_restarts)
        return f"it was restarted (restart {self._failures} of {self.options.max_restarts})"

    # ------------------------------------------------------------------------------ tools

    async def list_tools(self, *, refresh: bool = False) -> list[mcp_types.Tool]:
        """The server's tools as MCP describes them (all pages)."""

        async def listing() -> list[mcp_types.Tool]:
            for attempt in (1, 2):
                conn = await self._connection()
                tools: list[mcp_types.Tool] = []
                cursor: str | None = None
                try:
                    for _page in range(100):
                        page = await conn.client.list_tools(cursor=cursor, cache_mode="refresh" if refresh else "use")
                        tools.extend(page.tools)
                        cursor = page.next_cursor
                        if not cursor:
                            break
                    return tools
                except MCPError as exc:
                    if exc.code != mcp_types.CONNECTION_CLOSED or attempt == 2:
                        raise
                    await self._lost(conn, "listing its tools")  # listing is safe to repeat
            raise AssertionError("unreachable")  # pragma: no cover

        if self._listed is None or refresh:
            try:
                self._listed = await self._on_owner_loop(listing)
            except MCPError as exc:
                raise MCPToolError(f"the MCP server {self.name!r} could not list its tools: {exc.message}",
                                   reason="protocol") from exc
        return list(self._listed)

    async def tools(self, *, refresh: bool = False) -> list[FunctionTool]:
        """Agent tools for the server's tools (see the module docstring for their names)."""
        listed = await self.list_tools(refresh=refresh)
        prefix = self.name if self.options.tool_prefix is None else self.options.tool_prefix
        include, exclude = self.options.include, set(self.options.exclude)
        built: list[FunctionTool] = []
        for spec in listed:
            if (include is not None and spec.name not in include) or spec.name in exclude:
                continue
            schema = dict(spec.input_schema or {})
            schema.setdefault("type", "object")
            if schema.get("type") != "object":
                logger.warning("MCP server %s: tool %s has a non-object input schema; skipped", self.name, spec.name)
                continue
            schema.setdefault("properties", {})
            name = mcp_tool_name(prefix, spec.name, [t.name for t in built])
            built.append(FunctionTool(
                name=name, description=spec.description or spec.title or f"{spec.name} (MCP server {self.name})",
                parameters=schema, function=self._caller(spec), timeout=self.options.call_timeout_s + 5.0,
            ))
        return built

    async def register(self, registry: ToolRegistry) -> list[str]:
        """Add the server's tools to a registry (replacing earlier ones of the same name); their names."""
        names = []
        for built in await self.tools():
            registry.register(built, replace=True)
            names.append(built.name)
        return names

    def _caller(self, spec: mcp_types.Tool) -> Callable[..., Awaitable[str]]:
        hints = spec.annotations
        repeatable = bool(hints and (hints.read_only_hint or hints.idempotent_hint))
        server, tool_name = self, spec.name

        async def call_mcp_tool(**arguments: Any) -> str:
            return await server.call_tool(tool_name, arguments, repeatable=repeatable)

        call_mcp_tool.__name__ = spec.name
        call_mcp_tool.__qualname__ = f"MCPServer[{self.name}].{spec.name}"  # tells registries tools apart
        return call_mcp_tool

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None, *,
                        repeatable: bool = False) -> str:
        """Call tool ``name`` and return its result as text for the model; :class:`MCPToolError` when
        it fails or reports an error. ``repeatable``: re-send once if the server crashed mid-call."""
        return await self._on_owner_loop(lambda: self._call(name, dict(arguments or {}), repeatable))

    async def _call(self, name: str, arguments: dict[str, Any], repeatable: bool) -> str:
        for attempt in (1, 2):
            conn = await self._connection()
            try:
                result = await conn.client.call_tool(name, arguments,
                                                     read_timeout_seconds=self.options.call_timeout_s)
            except MCPError as exc:
                if exc.code == mcp_types.REQUEST_TIMEOUT:
                    raise MCPToolError(f"the MCP tool {name!r} of server {self.name!r} did not answer within "
                                       f"{self.options.call_timeout_s:g} s", reason="timeout") from exc
                if exc.code != mcp_types.CONNECTION_CLOSED:
                    raise MCPToolError(f"the MCP server {self.name!r} refused the call to {name!r}: {exc.message}",
                                       reason="protocol") from exc
                failure: BaseException = exc
            except _CONNECTION_LOST as exc:
                failure = _leaf(exc)
            except Exception as exc:
                raise MCPToolError(f"calling the MCP tool {name!r} of server {self.name!r} failed: "
                                   f"{type(exc).__name__}: {exc}", reason="error") from exc
            else:
                self._failures = 0
                return self._result_text(name, result)
            status = await self._lost(conn, f"a call to {name}")
            if attempt == 1 and repeatable and self.running:
                continue  # the server marks the tool read-only or idempotent: sending it again is safe
            raise MCPToolError(
                f"the MCP server {self.name!r} stopped while running {name!r} ({type(failure).__name__}: "
                f"{failure}); {status}. The call may or may not have taken effect: check before calling it again.",
                reason="crashed",
            ) from failure
        raise AssertionError("unreachable")  # pragma: no cover

    def _result_text(self, name: str, result: mcp_types.CallToolResult) -> str:
        parts: list[str] = []
        for block in result.content:
            if isinstance(block, mcp_types.TextContent):
                parts.append(block.text)
            elif isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
                kind = "image" if isinstance(block, mcp_types.ImageContent) else "audio"
                parts.append(f"[{kind} {block.mime_type}, {len(block.data) * 3 // 4} bytes, not shown]")
            elif isinstance(block, mcp_types.EmbeddedResource):
                resource = block.resource
                text = getattr(resource, "text", None)
                parts.append(text if isinstance(text, str) else
                             f"[resource {resource.uri} ({resource.mime_type or 'binary'}), not shown]")
            elif isinstance(block, mcp_types.ResourceLink):
                parts.append(f"[resource link: {block.uri}{f' ({block.description})' if block.description else ''}]")
        if not parts and result.structured_content is not None:
            parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
        text = cap_text("\n".join(parts), self.options.max_result_chars, what=f"result of {name}")
        if result.is_error:
            raise MCPToolError(
                f"the MCP tool {name!r} of server {self.name!r} reported an error: {text or 'no details'}",
                reason="tool_error",
            )
        return text


def _stderr() -> TextIO:
    """This process's stderr for a server's, or the original one when stderr was replaced by a stream
    without a file descriptor (a captured one), which a subprocess cannot write to."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__ or sys.stderr
    return sys.stderr


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, which anyio task groups raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


@contextlib.asynccontextmanager
async def _http_client(url: str, headers: dict[str, str],
                       transport: httpx2.AsyncBaseTransport | None) -> AsyncIterator[Client]:
    # The SDK's own defaults for its HTTP client: 30 s to connect and write, 300 s between reads (streams).
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0), transport=transport)
        as http_client,
        Client(streamable_http_client(url, http_client=http_client)) as client,
    ):
        yield client
