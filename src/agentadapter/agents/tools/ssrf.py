"""Server-side request forgery protection: which addresses a fetch may connect to.

A URL a model chooses must not reach what only this machine can reach: loopback services, the
private network, link-local addresses and the cloud metadata endpoints (which hand out
credentials). :func:`address_problem` judges one IP address against an :class:`AddressPolicy`.
The check must be made on the address actually connected to, so :class:`GuardedResolver` plugs
into aiohttp's connector as its DNS resolver: it resolves the name, refuses the connection if
*any* answer is forbidden, and hands aiohttp only checked addresses, so a name cannot resolve to
one address for the check and another for the connection (DNS rebinding). IP literals in URLs
(which aiohttp does not resolve) are checked by :func:`check_url` before the request; the fetch
tool calls it again for every redirect. :class:`StaticResolver` answers from a table (tests, or
pinning names).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from agentadapter.agents.tools.errors import FetchRefused
from agentadapter.llm.errors import ConfigurationError

__all__ = [
    "METADATA_ADDRESSES",
    "AddressPolicy",
    "GuardedResolver",
    "Resolver",
    "StaticResolver",
    "SystemResolver",
    "address_problem",
    "check_url",
    "ip_literal",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle instance metadata
    "169.254.170.2",     # AWS ECS task metadata and credentials
    "169.254.169.123",   # AWS time sync (same link-local service block)
    "fd00:ec2::254",     # AWS instance metadata over IPv6
    "100.100.100.200",   # Alibaba Cloud metadata
    "168.63.129.16",     # Azure host (WireServer): a public address that only answers inside Azure
))
"""Refused even when private addresses are allowed; list one in ``allowed_networks`` to reach it."""

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which hosts and addresses outbound requests may reach. By default: public addresses only."""

    allow_private: bool = False
    """Also allow loopback, private (RFC 1918, ULA), carrier-grade NAT and link-local addresses.
    Metadata addresses stay refused."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names exempt from the address checks: ``"intranet.example"``, or ``".example"`` for a
    domain and its subdomains. Case-insensitive."""
    allowed_networks: tuple[str, ...] = ()
    """Networks (CIDR) exempt from the address checks, e.g. ``"10.1.2.0/24"`` or ``"127.0.0.1/32"``."""

    def __post_init__(self) -> None:
        try:
            self.networks  # noqa: B018 - parse once now, so a typo fails at configuration time
        except ValueError as exc:
            raise ConfigurationError(f"allowed_networks: {exc}; give CIDRs such as '10.0.0.0/8'") from exc

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks)

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` is exempt from the address checks by name."""
        name = host.lower().rstrip(".")
        for entry in self.allowed_hosts:
            entry = entry.lower().rstrip(".")
            if name == entry.lstrip(".") or (entry.startswith(".") and name.endswith(entry)):
                return True
        return False


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), which is what gets reached."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def _category(ip: IPAddress) -> str | None:
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED):
        return "a private address"
    if not ip.is_global:
        return "a reserved address"
    return None


def address_problem(address: str | IPAddress, policy: AddressPolicy) -> str | None:
    """Why ``address`` may not be connected to under ``policy`` (e.g. ``"a loopback address"``), or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    inner = _unwrap(ip)  # what an IPv4-in-IPv6 address really reaches
    networks = policy.networks
    if any(candidate in net for candidate in (ip, inner) for net in networks if net.version == candidate.version):
        return None
    for candidate in (inner, ip):
        if candidate in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if candidate.is_unspecified:
            return "the unspecified address (it reaches this machine)"
        if candidate.is_multicast:
            return "a multicast address"
    kind = _category(inner)  # for an address carrying an IPv4 one, what it carries decides
    if kind is None or (policy.allow_private and kind != "a reserved address"):
        return None
    return kind


def _refusal(host: str, address: str, problem: str) -> FetchRefused:
    what = host if host == address else f"{host} ({address})"
    return FetchRefused(
        f"{what} is {problem}; requests to loopback, private, link-local and metadata addresses are refused to "
        "protect this machine and its network. Fetch a public URL instead (an operator can allow hosts or "
        "networks in the fetch policy)", reason="forbidden_address",
    )


def ip_literal(host: str) -> IPAddress | None:
    """The IP address ``host`` is written as (a zone id ignored), or None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def check_url(url: str | URL, policy: AddressPolicy) -> URL:
    """The parsed URL if its scheme and (for an IP literal) its address are acceptable; else :class:`FetchRefused`.
    Host names are checked when resolved (:class:`GuardedResolver`)."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
    except (ValueError, TypeError) as exc:
        raise FetchRefused(f"{url!r} is not a valid URL ({exc})", reason="invalid_url") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https URLs can be fetched, not {parsed.scheme or 'a relative URL'!r}",
                           reason="scheme")
    host = parsed.raw_host
    if not host:
        raise FetchRefused(f"the URL {str(parsed)!r} has no host", reason="invalid_url")
    if parsed.user is not None or parsed.password is not None:
        raise FetchRefused("URLs with credentials (user:password@) are not fetched; remove them",
                           reason="credentials")
    if policy.host_allowed(host):
        return parsed.with_fragment(None)
    literal = ip_literal(host)
    if literal is None and all(_NUMERIC_LABEL.fullmatch(label) for label in host.rstrip(".").split(".")):
        raise FetchRefused(f"{host!r} is a numeric address in a non-standard form; write it as a normal IP address",
                           reason="invalid_url")
    if literal is not None:
        problem = address_problem(literal, policy)
        if problem is not None:
            raise _refusal(host, str(literal), problem)
    return parsed.with_fragment(None)


# ---------------------------------------------------------------------------------------- resolvers


class Resolver(Protocol):
    """Turns a host name into IP addresses (as strings)."""

    async def resolve(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        seen: dict[str, None] = {}
        for _family, _type, _proto, _canonical, sockaddr in infos:
            seen.setdefault(str(sockaddr[0]), None)
        return list(seen)


class StaticResolver:
    """Answers from a table ``{host: [addresses]}``; unknown names do not resolve."""

    def __init__(self, table: Mapping[str, Sequence[str] | str]) -> None:
        self.table = {k.lower().rstrip("."): [v] if isinstance(v, str) else list(v) for k, v in table.items()}
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        name = host.lower().rstrip(".")
        self.lookups.append(name)
        found = self.table.get(name)
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} does not resolve")
        return list(found)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver hook: resolve, refuse if any address is forbidden, return only checked ones."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self.resolver: Resolver = resolver or SystemResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        addresses = await self.resolver.resolve(host, port)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} does not resolve")
        if not self.policy.host_allowed(host):
            for address in addresses:
                problem = address_problem(address, self.policy)
                if problem is not None:
                    raise _refusal(host, address, problem)
        return [_result(host, address, port) for address in _wanted(addresses, family)]

    async def close(self) -> None:
        return None


def _wanted(addresses: Iterable[str], family: int) -> list[str]:
    if family == socket.AF_INET:
        return [a for a in addresses if ":" not in a] or list(addresses)
    if family == socket.AF_INET6:
        return [a for a in addresses if ":" in a] or list(addresses)
    return list(addresses)


def _result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {"hostname": host, "host": address, "port": port, "family": family, "proto": 0,
            "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV}
