"""The network guard of tests/conftest.py: a test reaches loopback, and nothing else.

Each refusal is checked to say what was refused and why; the refusals these tests provoke on purpose
are removed from the end-of-run list (which is there for the ones nobody meant).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest

import network_guard
from network_guard import GUARD, NetworkAccessBlocked, is_local

PUBLIC = "93.184.216.34"  # a public address; nothing here ever reaches it


@pytest.fixture(autouse=True)
def _forget_these_refusals() -> Iterator[None]:
    before = len(GUARD.refused)
    yield
    del GUARD.refused[before:]


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback TCP port that accepts connections."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1", True), ("127.1", True), ("2130706433", True), ("::1", True), ("[::1]", True),
    ("::ffff:127.0.0.1", True), ("0.0.0.0", True), ("localhost", True), ("LOCALHOST.", True),
    ("api.localhost", True), (None, True), (b"127.0.0.1", True),
    (PUBLIC, False), ("10.0.0.1", False), ("169.254.169.254", False), ("2606:2800:220:1::", False),
    ("example.com", False), ("localhost.example.com", False), ("::ffff:93.184.216.34", False),
])
def test_what_counts_as_loopback(host: str | bytes | None, local: bool) -> None:
    assert is_local(host) is local


def test_a_connection_beyond_loopback_is_refused_and_says_why() -> None:
    with socket.socket() as sock, pytest.raises(NetworkAccessBlocked, match=rf"{PUBLIC}:80 refused: tests reach"):
        sock.connect((PUBLIC, 80))
    with socket.socket() as sock, pytest.raises(NetworkAccessBlocked):
        sock.connect_ex((PUBLIC, 443))
    with pytest.raises(NetworkAccessBlocked, match="loopback fake"):
        socket.create_connection((PUBLIC, 80), timeout=1)
    assert GUARD.refused[-1] == (
        "tests/test_network_guard.py::test_a_connection_beyond_loopback_is_refused_and_says_why",
        f"a connection to {PUBLIC}:80")


def test_a_name_lookup_beyond_loopback_is_refused() -> None:
    with pytest.raises(socket.gaierror, match=r"a name lookup of 'example\.com' refused"):
        socket.getaddrinfo("example.com", 443)
    assert socket.getaddrinfo(PUBLIC, 443)  # a numeric address needs no lookup; connecting is what is refused


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, what caused it and the members of exception groups among them."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += list(getattr(current, "exceptions", ()))


async def test_clients_get_their_usual_connection_error_caused_by_the_refusal() -> None:
    with pytest.raises(httpx.ConnectError) as refused:
        async with httpx.AsyncClient() as client:
            await client.get(f"http://{PUBLIC}/")
    assert [e for e in causes(refused.value) if isinstance(e, NetworkAccessBlocked)]
    with pytest.raises(httpx.ConnectError, match=r"example\.com:443 refused: tests reach only loopback"):
        httpx.get("https://example.com/", timeout=2)
    with pytest.raises(socket.gaierror, match="refused"):
        await asyncio.open_connection("example.com", 80)
    with pytest.raises(NetworkAccessBlocked):
        await asyncio.open_connection(PUBLIC, 80)
    assert {what for _, what in GUARD.refused} >= {
        f"a connection to {PUBLIC}:80", "a connection to example.com:443", "a name lookup of 'example.com'"}


async def test_loopback_and_unix_sockets_work(listener: int, tmp_path: object) -> None:
    socket.create_connection(("127.0.0.1", listener), timeout=2).close()
    socket.create_connection(("localhost", listener), timeout=2).close()
    _, writer = await asyncio.open_connection("127.0.0.1", listener)
    writer.close()
    path = f"{tmp_path}/guard.sock"
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(path)
        server.listen()
        client.connect(path)


def test_the_guard_is_installed_for_every_test() -> None:
    assert socket.socket.connect is network_guard.connect
    assert socket.getaddrinfo is network_guard.getaddrinfo
    assert socket.create_connection is network_guard.create_connection


@pytest.mark.live
def test_a_live_test_is_let_through() -> None:
    assert GUARD.allow_all  # (live tests run only on request: -m live)
