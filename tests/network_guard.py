"""Tests reach no network but loopback: the guard every test runs under (installed by tests/conftest.py).

The suite talks to real servers, all of them on this machine (PostgreSQL, Redis, RabbitMQ, loopback
fakes of providers and web pages). A test that reaches further - a provider's real API, a web page, a
DNS lookup of a real name - would depend on the network, could leak a key or a prompt, and could spend
money. So for the whole session ``socket.socket.connect``/``connect_ex``, ``socket.create_connection``
and ``socket.getaddrinfo`` refuse any host that is not loopback (127.0.0.0/8, ::1, ``localhost``,
the unspecified address, Unix sockets): a connection raises :class:`NetworkAccessBlocked` (a
``ConnectionRefusedError``, so code under test takes its usual "cannot connect" path) and a name lookup
raises ``socket.gaierror``, both saying what was refused and why; the terminal summary lists every
refusal by test, so one that code under test caught and hid is still seen.

Tests marked ``live`` (real providers, run only on request with their keys) are let through.
Subprocesses a test starts (servers, workers) are outside this guard: what they may reach is decided
by the configuration the test hands them, which only ever names loopback services.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

__all__ = ["GUARD", "NetworkAccessBlocked", "connect", "connect_ex", "create_connection", "getaddrinfo", "is_local"]

HINT = "tests reach only loopback: use a loopback fake (tests/fakes) or mark the test `live`"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_create_connection = socket.create_connection
_real_getaddrinfo = socket.getaddrinfo

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class NetworkAccessBlocked(ConnectionRefusedError):
    """A test tried to connect beyond loopback."""


class _Guard:
    """What the patched functions consult: whether the running test may go out, and what was refused."""

    def __init__(self) -> None:
        self.allow_all = False
        self.test = "(outside a test)"
        self.refused: list[tuple[str, str]] = []

    def refuse(self, what: str) -> str:
        self.refused.append((self.test, what))
        return f"{what} refused: {HINT} (the network guard, tests/network_guard.py)"


GUARD = _Guard()


def _address(host: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address if it is one (any form the C library accepts, e.g. ``127.1``), else None."""
    text = host.decode() if isinstance(host, bytes) else str(host)
    text = text.strip("[]").split("%", 1)[0]  # [::1] in URLs; fe80::1%eth0 zone ids
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _is_local_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def is_local(host: Any) -> bool:
    """Whether connecting to (or resolving) ``host`` stays on this machine's loopback."""
    if host is None or host in ("", b""):
        return True
    address = _address(host)
    if address is not None:
        return _is_local_address(address)
    name = (host.decode() if isinstance(host, bytes) else str(host)).lower().rstrip(".")
    return name in _LOCAL_NAMES or name.endswith(".localhost")


def _check_connect(sock: socket.socket, address: Any) -> None:
    if GUARD.allow_all or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # Unix sockets (and netlink, ...) never leave the machine
    host = address[0] if isinstance(address, tuple) else address
    if not is_local(host):
        port = address[1] if isinstance(address, tuple) and len(address) > 1 else "?"
        raise NetworkAccessBlocked(GUARD.refuse(f"a connection to {host}:{port}"))


def connect(self: socket.socket, address: Any) -> None:
    _check_connect(self, address)
    _real_connect(self, address)


def connect_ex(self: socket.socket, address: Any) -> int:
    _check_connect(self, address)
    return _real_connect_ex(self, address)


def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    if not GUARD.allow_all and not is_local(address[0]):
        raise NetworkAccessBlocked(GUARD.refuse(f"a connection to {address[0]}:{address[1]}"))
    return _real_create_connection(address, *args, **kwargs)


def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    # A numeric address needs no lookup (connecting to it is checked in connect); a name would go to DNS.
    if not GUARD.allow_all and _address(host) is None and not is_local(host):
        raise socket.gaierror(socket.EAI_NONAME, GUARD.refuse(f"a name lookup of {host!r}"))
    return _real_getaddrinfo(host, *args, **kwargs)
