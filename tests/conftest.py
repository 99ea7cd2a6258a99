"""Every test runs under the network guard: no connection or name lookup beyond loopback.

What is refused and why is in tests/network_guard.py; a test marked ``live`` (real providers, run
only on request) is let through. Refusals are listed, by test, at the end of the run.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

import network_guard


@pytest.fixture(scope="session", autouse=True)
def _no_network_beyond_loopback() -> Iterator[None]:
    """Patch the socket module for the whole session (see tests/network_guard.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", network_guard.connect)
        patch.setattr(socket.socket, "connect_ex", network_guard.connect_ex)
        patch.setattr(socket, "create_connection", network_guard.create_connection)
        patch.setattr(socket, "getaddrinfo", network_guard.getaddrinfo)
        yield


@pytest.fixture(autouse=True)
def _network_guard_for_this_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Name the running test in refusals; let ``live`` tests (real providers) through."""
    network_guard.GUARD.test = request.node.nodeid
    network_guard.GUARD.allow_all = request.node.get_closest_marker("live") is not None
    try:
        yield
    finally:
        network_guard.GUARD.allow_all = False
        network_guard.GUARD.test = "(outside a test)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first (otherwise in their order): pytest-xdist hands tests out in this order,
    and a long test that starts last keeps the whole suite waiting on one worker."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List what the guard refused, by test: a refusal the code under test caught is otherwise invisible."""
    if not network_guard.GUARD.refused:
        return
    terminalreporter.section("network access refused (tests reach only loopback)")
    for test, what in network_guard.GUARD.refused:
        terminalreporter.line(f"{test}: {what}")
