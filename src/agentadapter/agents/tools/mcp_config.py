"""MCP servers named by configuration: their declaration, the trust rules on them, and the agent that
connects them for each of its runs.

A declaration (:class:`MCPServerSpec`) is ``{name, url, headers}`` (streamable HTTP) or ``{name,
command, args, env, cwd}`` (stdio: a local process), plus ``tools`` (only these) / ``exclude`` and
the timeouts. Where it may come from decides what it may be (:func:`parse_mcp_servers`):

- an operator's file (a workflow file, ``agentadapter.yaml``) may declare both kinds;
- a tenant's data (a stored agent) may declare streamable-HTTP servers only, and their URLs go through
  the address rules of ``http_fetch`` (:mod:`.ssrf`: no loopback, private, link-local or metadata
  address unless the operator's :class:`~agentadapter.agents.tools.ssrf.AddressPolicy` allows it),
  checked when written and again, on the resolved addresses, before each connection.

:class:`MCPAgent` wraps an :class:`~agentadapter.agents.llm_agent.LLMAgent`: each run of it opens one
connection per server (:class:`~agentadapter.agents.tools.mcp_tools.MCPServer`), lists the tools -
named ``<server>__<tool>`` - adds them to the agent's own, runs the agent, and closes every connection
when the run ends, whatever its outcome. Every tool call of the run reuses its server's connection; in
an orchestrated run (``RunConfig.resources``) the connections belong to the whole run, shared by every
step that names the same server, and close when the run ends.
(A DNS name is checked on the addresses it resolves to just before the connection, for a clear refusal,
and every request of the connection goes to an address checked again as it is made
(:class:`~agentadapter.agents.tools.pinned_http.PinnedTransport`), so a name that resolves to an allowed
address for the check and a forbidden one for the connection (DNS rebinding) reaches nothing.)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.agents.tools.errors import FetchRefused
from agentadapter.agents.tools.ssrf import AddressPolicy, Resolver, SystemResolver, address_problem, check_url
from agentadapter.llm.errors import ConfigurationError

if TYPE_CHECKING:
    from agentadapter.agents.context import AgentContext
    from agentadapter.agents.result import AgentResult
    from agentadapter.agents.tools.mcp_tools import MCPServer

__all__ = ["MCPAgent", "MCPServerSpec", "check_mcp_address", "parse_mcp_servers"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class MCPServerSpec(BaseModel):
    """One MCP server as data (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME.pattern)
    """Names the server, and prefixes its tools' names (``<name>__<tool>``)."""
    url: str | None = Field(default=None, max_length=2000)
    """A streamable-HTTP endpoint (usually ending in ``/mcp``)."""
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = None
    """A stdio server's program (operators' files only)."""
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    tools: list[str] | None = None
    """Only these of the server's tools (by their MCP names); None: all."""
    exclude: list[str] = Field(default_factory=list)
    call_timeout_s: float = Field(default=60.0, gt=0, le=600)
    connect_timeout_s: float = Field(default=30.0, gt=0, le=120)

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSpec:
        if (self.url is None) == (self.command is None):
            raise ValueError("give either url (streamable HTTP) or command (stdio), not both or neither")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL, not {self.url!r}")
        return self

    @property
    def transport(self) -> str:
        return "http" if self.url is not None else "stdio"

    def server(self, policy: AddressPolicy | None = None, resolver: Resolver | None = None) -> MCPServer:
        """A new, unconnected server object for this declaration; with ``policy``, its HTTP connections go
        only to addresses the policy allows, checked on the address connected to."""
        from agentadapter.agents.tools.mcp_tools import MCPServer

        data: dict[str, Any] = {
            "name": self.name,
            "include": self.tools,
            "exclude": self.exclude,
            "call_timeout_s": self.call_timeout_s,
            "connect_timeout_s": self.connect_timeout_s,
        }
        if self.url is not None:
            data.update(url=self.url, headers=self.headers)
        else:
            data.update(command=self.command, args=self.args, env=self.env or None, cwd=self.cwd)
        server = MCPServer.from_dict(data)
        if self.url is not None and policy is not None:
            server.address_policy, server.resolver = policy, resolver
        return server


def parse_mcp_servers(data: Any, *, where: str = "mcp_servers", allow_stdio: bool) -> list[MCPServerSpec]:
    """Declarations from data (a list of mappings); each problem names its place (``mcp_servers[1].url``).

    ``allow_stdio`` is for operators' files: a tenant may not start processes on the server.
    """
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigurationError(f"{where}: a list of MCP servers ({{name, url}} or {{name, command}}) is expected")
    specs: list[MCPServerSpec] = []
    for index, item in enumerate(data):
        place = f"{where}[{index}]"
        try:
            spec = MCPServerSpec.model_validate(item)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ConfigurationError(f"{place}{'.' + field if field else ''}: {first['msg']}") from None
        if spec.command is not None and not allow_stdio:
            raise ConfigurationError(
                f"{place}.command: stdio MCP servers (a command to start) are the operator's "
                "to declare; give a streamable-HTTP url instead"
            )
        if spec.name in {s.name for s in specs}:
            raise ConfigurationError(f"{place}.name: another MCP server is named {spec.name!r} too")
        specs.append(spec)
    return specs


async def check_mcp_address(url: str, policy: AddressPolicy, resolver: Resolver | None = None) -> None:
    """Refuse (:class:`FetchRefused`) a URL whose host is, or resolves to, an address ``policy`` forbids."""
    parsed = check_url(url, policy)  # scheme, credentials and IP literals
    host = parsed.raw_host or ""
    if policy.host_allowed(host):
        return
    addresses = await (resolver or SystemResolver()).resolve(host, parsed.port or 0)
    for address in addresses:
        problem = address_problem(address, policy)
        if problem is not None:
            raise FetchRefused(
                f"MCP server {host} ({address}) is {problem}; servers on loopback, private, "
                "link-local and metadata addresses are refused unless the operator allows them",
                reason="forbidden_address",
            )


class MCPAgent(BaseAgent):
    """An LLM agent whose tools include MCP servers' tools, connected for each of its runs (module docstring)."""

    agent_type: ClassVar[str] = "mcp"

    def __init__(
        self,
        agent: LLMAgent,
        servers: Sequence[MCPServerSpec],
        *,
        policy: AddressPolicy | None = None,
        resolver: Resolver | None = None,
        trusted: Collection[str] = (),
    ) -> None:
        super().__init__(agent.name)
        self.agent = agent
        self.servers = tuple(servers)
        self.policy = policy
        """The address rules an HTTP server's URL is checked against before each connection (None: none)."""
        self.trusted = frozenset(trusted)
        """Servers (by name) the operator declared: not held to the address rules."""
        self.resolver = resolver

    @property
    def description(self) -> str:
        return self.agent.description

    async def execute(self, context: AgentContext) -> AgentResult:
        shared = context.config.resources  # an orchestrated run's: one connection per server for all its steps
        owned: list[MCPServer] = []
        try:
            tools: list[Any] = []
            for spec in self.servers:
                policy = self.policy if spec.url is not None and spec.name not in self.trusted else None
                if policy is not None:
                    # Refused here with a clear message; the connection itself is pinned to checked addresses.
                    await check_mcp_address(str(spec.url), policy, self.resolver)
                if shared is not None:
                    server = await shared.get(("mcp", spec.model_dump_json(), policy is not None),
                                              _opened(spec, policy, self.resolver), _close)
                else:
                    server = spec.server(policy, self.resolver)
                    owned.append(server)
                tools.extend(await server.tools())
            agent = self.agent.clone(tools=[*self.agent.tools, *tools])
            return await agent.execute(context.for_agent(agent))
        finally:
            for server in owned:
                await _close(server)


def _opened(spec: MCPServerSpec, policy: AddressPolicy | None,
            resolver: Resolver | None) -> Callable[[], Awaitable[MCPServer]]:
    async def open_server() -> MCPServer:
        return spec.server(policy, resolver)  # connects on first use, inside the run

    return open_server


async def _close(server: MCPServer) -> None:
    with contextlib.suppress(Exception):
        await server.close()
