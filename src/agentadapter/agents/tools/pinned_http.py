"""An HTTP transport for the MCP SDK's client that connects only to addresses the address rules allow.

A tenant's MCP server URL is checked (:func:`~agentadapter.agents.tools.mcp_config.check_mcp_address`)
before each connection, but the SDK's HTTP client would resolve the name again to connect: a name that
answers a public address to the check and a loopback or metadata address to the connection (DNS
rebinding) would reach what the rules forbid. :class:`PinnedTransport` resolves the name itself for
every request, refuses the request if any answer is forbidden (as :class:`~.ssrf.GuardedResolver` does
for aiohttp), and sends it to a checked address, with the original ``Host`` header and the name for TLS
(SNI and certificate checks), so the address checked is the address connected to.
"""

from __future__ import annotations

import httpx2

from agentadapter.agents.tools.ssrf import AddressPolicy, Resolver, SystemResolver, address_problem, ip_literal

__all__ = ["PinnedTransport"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class PinnedTransport(httpx2.AsyncBaseTransport):
    """Sends each request to an address of its host that ``policy`` allows (see the module docstring)."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self.resolver = resolver or SystemResolver()
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        host = request.url.host
        address = await self._address(host, request.url.port or _DEFAULT_PORTS.get(request.url.scheme, 0))
        if address == host:
            return await self._inner.handle_async_request(request)
        pinned = httpx2.Request(request.method, request.url.copy_with(host=address), headers=request.headers,
                                stream=request.stream, extensions={**request.extensions, "sni_hostname": host})
        return await self._inner.handle_async_request(pinned)

    async def _address(self, host: str, port: int) -> str:
        """The address to connect to: ``host`` itself (an IP literal, or a name the operator allows), else
        the first of its addresses, once every one of them is allowed."""
        if self.policy.host_allowed(host):
            return host
        try:
            addresses = [host] if ip_literal(host) is not None else await self.resolver.resolve(host, port)
        except OSError as exc:
            raise httpx2.ConnectError(f"{host} does not resolve ({exc})") from exc
        for address in addresses:
            problem = address_problem(address, self.policy)
            if problem is not None:
                raise httpx2.ConnectError(
                    f"refused to connect to {host} ({address}): it is {problem}; servers on loopback, private, "
                    "link-local and metadata addresses are refused unless the operator allows them")
        if not addresses:
            raise httpx2.ConnectError(f"{host} resolves to no address")
        return addresses[0]

    async def aclose(self) -> None:
        await self._inner.aclose()

