"""A small MCP server for the MCP client tests, built on the official SDK's server side.

Run it as a program for the stdio transport (``python tests/fakes/mcp_server.py``), or serve it over
streamable HTTP on loopback inside a test with :func:`serve_http` (uvicorn on a socket bound to a free
port of 127.0.0.1). Its tools cover what the client must handle: plain results, a rich input schema
that must pass through unchanged, a tool-level error, a result too large for the model, a tool whose
name is not a valid model tool name, and a crash (the process exits mid-call).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

SCRIPT = str(Path(__file__).resolve())
"""Pass ``[sys.executable, SCRIPT]`` as the command of a stdio server."""


def build_server(name: str = "fake") -> MCPServer:
    server: MCPServer = MCPServer(name, log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @server.tool()
    def search_files(
        pattern: str, kind: Literal["file", "dir"] = "file", limit: int = 10, tags: list[str] | None = None
    ) -> str:
        """Search files by pattern (a tool with a richer schema)."""
        return f"{pattern}:{kind}:{limit}:{','.join(tags or [])}"

    @server.tool()
    def fail(message: str) -> str:
        """Always fails with the message."""
        raise ToolError(message)

    @server.tool()
    def big(size: int) -> str:
        """A result of ``size`` characters."""
        return "x" * size

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def pid() -> int:
        """The server's process id (a restart changes it)."""
        return os.getpid()

    @server.tool()
    def crash() -> str:
        """Exit the server process without answering."""
        sys.stdout.flush()
        os._exit(3)

    @server.tool(name="files.read")
    def files_read(path: str) -> str:
        """A tool whose name has a dot (not a valid model tool name)."""
        return f"contents of {path}"

    return server


@contextlib.asynccontextmanager
async def serve_http(name: str = "fake", port: int = 0, seen_headers: list[dict[str, str]] | None = None,
                     host_names: tuple[str, ...] = ()) -> AsyncIterator[str]:
    """Serve the fake over streamable HTTP on 127.0.0.1 (a free port unless ``port`` is given);
    yields the endpoint URL (``http://127.0.0.1:PORT/mcp``). ``seen_headers`` collects each
    request's headers; ``host_names`` are names it answers to besides 127.0.0.1 and localhost (the SDK's
    server refuses other ``Host`` headers)."""
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    allowed = [f"{host}:*" for host in ("127.0.0.1", "localhost", *host_names)]
    mcp_app = build_server(name).streamable_http_app(
        transport_security=TransportSecuritySettings(allowed_hosts=allowed) if host_names else None)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and seen_headers is not None:
            seen_headers.append({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})
        await mcp_app(scope, receive, send)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await task
        sock.close()


if __name__ == "__main__":
    build_server(os.environ.get("FAKE_MCP_NAME", "fake")).run("stdio")
