"""Fixtures for the dashboard's browser tests: the real server over real HTTP, and a headless Chromium.

``dashboard`` starts the app with uvicorn on a loopback port of its own (port 0), in a thread, on a
fresh migrated SQLite file, with an ``LLM`` that answers ``test/...``, a priced model (``priced/model``,
:mod:`fakes.priced`) whose calls wait on a gate when the prompt says ``[hold]`` (so a test sees a run
in progress before it lets it finish), and ``flaky/...``: a provider on loopback that answers every
call with a 500 (its breaker opens); its tools are ``tide_table`` and ``refund_order``, whose calls wait for
a human's approval (the operator's ``approval_tools``). ``page`` is a fresh browser context (no cookies) in Debian's
Chromium (``/usr/bin/chromium``, driven by Playwright; no browser is ever downloaded). Without
Chromium the tests skip, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from agentadapter.agents.tools.registry import ToolRegistry
from agentadapter.llm.backends.testing import FunctionBackend
from agentadapter.llm.client import LLM
from agentadapter.llm.messages import Request, Response, TextPart, Usage
from agentadapter.server.app import create_app
from fakes.priced import PRICED_MODEL, priced_backend
from server.conftest import any_api, api, make_api, make_settings, server_settings, template_dir  # noqa: F401 - fixtures
from store.databases import admin_key, new_database_url, unique

CHROMIUM = os.environ.get("AGENTADAPTER_TEST_CHROMIUM", "/usr/bin/chromium")
HOLD = "[hold]"
"""A prompt with this marker waits for the test's gate before the priced model answers."""


def _chromium_or_skip() -> str:
    try:
        import playwright  # noqa: F401 - the dev extra's
    except ImportError:
        message = "the playwright package is not installed (pip install -e '.[dev]')"
    else:
        if Path(CHROMIUM).exists() or shutil.which(CHROMIUM):
            return CHROMIUM
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium chromium-driver)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI installs it from .ci/run")
    pytest.skip(message)


class _Failing(BaseHTTPRequestHandler):
    """A provider whose every answer is a 500 (in OpenAI's error shape)."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        body = json.dumps({"error": {"type": "server_error", "message": "the fake provider is down"}}).encode()
        self.send_response(500)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


class _Server(uvicorn.Server):
    """uvicorn, telling the test when it listens (after the app's lifespan has started)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@dataclass
class Dashboard:
    url: str
    database_url: str
    gate: threading.Event
    screenshots: Path
    docs_screenshots: Path | None

    def tenant_key(self, prefix: str = "ui") -> str:
        """A new tenant's admin API key (each test its own tenant: the shared server stays independent)."""
        # In a thread of its own: Playwright's sync API runs an event loop in the test's thread.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, admin_key(self.database_url, prefix)).result()

    def api(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def shot(self, page: Any, name: str, *, full_page: bool = True) -> None:
        """A screenshot of the page, kept in the test's folder (and in the docs' when asked)."""
        path = self.screenshots / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if self.docs_screenshots is not None:
            self.docs_screenshots.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.docs_screenshots / path.name)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    _chromium_or_skip()
    folder = tmp_path_factory.mktemp("dashboard")
    database_url = new_database_url("sqlite", folder, tmp_path_factory.mktemp("templates"))
    gate = threading.Event()
    priced_backend()  # registers priced/model's price in the catalog

    async def answer(request: Request) -> Response:
        last = request.messages[-1]
        prompt = "".join(getattr(part, "text", "") or "" for part in last.parts)
        if HOLD in prompt:
            # Off the event loop: the server keeps answering (pages, the event stream) while this call waits.
            released = await asyncio.to_thread(gate.wait, 60)
            assert released, "the test never opened the gate"
        return Response(
            id="priced",
            provider="priced",
            model=request.model,
            parts=[TextPart("paid answer")],
            finish_reason="stop",
            usage=Usage(input_tokens=10, output_tokens=request.max_tokens or 1000),
        )

    failing = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    failing_thread = threading.Thread(target=failing.serve_forever, name="failing-provider", daemon=True)
    failing_thread.start()
    flaky_url = f"http://127.0.0.1:{failing.server_address[1]}/v1"
    llm = LLM(
        config={"backends": {"flaky": {"type": "openai", "base_url": flaky_url, "api_key": "sk-test"}}},
        backends={"priced": FunctionBackend(answer, name="priced")},
        environ={},
    )
    tools = ToolRegistry()

    @tools.tool
    def tide_table(port: str) -> str:
        """The next high tide at a port."""
        return f"high tide at {port}: 14:05"

    @tools.tool
    def refund_order(order: str) -> str:
        """Refund an order (the operator's approval_tools make each call wait for a human)."""
        return f"refunded {order}"

    app = create_app(
        make_settings(database_url, folder),
        server_settings=server_settings(approval_tools=["refund_order"]),
        llm=llm,
        tools=tools,
    )
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", loop="asyncio", http="h11")
    )
    thread = threading.Thread(target=server.run, name="dashboard-server", daemon=True)
    thread.start()
    try:
        if not server.ready.wait(60) or not server.servers:
            raise RuntimeError("the dashboard's server did not start")
        port = server.servers[0].sockets[0].getsockname()[1]
        docs = os.environ.get("AGENTADAPTER_UI_SCREENSHOTS")
        shots = folder / "screenshots"
        shots.mkdir()
        yield Dashboard(f"http://127.0.0.1:{port}", database_url, gate, shots, Path(docs) if docs else None)
    finally:
        gate.set()  # a run still waiting ends
        server.should_exit = True
        thread.join(30)
        failing.shutdown()
        failing.server_close()
        failing_thread.join(10)
        asyncio.run(llm.aclose())


@pytest.fixture(scope="module")
def browser(dashboard: Dashboard) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=_chromium_or_skip(),
            headless=True,
            # root in a container: no user namespaces for Chromium's sandbox.
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies); the console's errors (a CSP refusal among them) are in
    ``page.console_errors``."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    errors: list[str] = []
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.console_errors = errors
    try:
        yield opened
    finally:
        context.close()


def sign_in(page: Any, dashboard: Dashboard, key: str) -> None:
    page.goto(f"{dashboard.url}/ui/login")
    page.fill("#credential", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{dashboard.url}/ui/runs")


__all__ = ["HOLD", "PRICED_MODEL", "Dashboard", "sign_in", "unique"]
