"""``http_fetch`` against loopback servers: refused by default, allowed when allowed, redirects re-checked.

Names resolve through a :class:`StaticResolver`, so public, private and metadata answers are
simulated without touching the internet; the only servers ever connected to are on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from agentadapter.agents import LLMAgent
from agentadapter.agents.tools.audit import InMemoryToolAudit
from agentadapter.agents.tools.errors import FetchError, FetchRefused
from agentadapter.agents.tools.http_fetch import FetchPolicy, HTTPFetch, html_to_text
from agentadapter.agents.tools.ssrf import StaticResolver
from fakes.server import FakeServer, Recorded

from .conftest import call, reply, scripted, tool_results

PAGE = """<!doctype html><html><head><title>The  Page</title><style>body{color:red}</style>
<script>alert("no")</script></head><body><nav><a href="/">Home</a></nav>
<h1>Heading</h1><p>First paragraph with <b>bold</b>
text.</p><ul><li>one</li><li>two</li></ul><noscript>enable js</noscript></body></html>"""

RESOLVER = StaticResolver({
    "site.example": "127.0.0.1",           # the loopback fake, reachable only when explicitly allowed
    "public.example": "93.184.216.34",
    "intranet.example": "10.20.30.40",
    "metadata.example": "169.254.169.254",
    "rebind.example": ["93.184.216.34", "127.0.0.1"],
})


def html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()

    async def page(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return html(PAGE)

    async def redirect(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": request.query["to"]})

    async def big(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.Response(text="0123456789" * 10_000, content_type="text/plain")

    async def secret(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.Response(text="the secret", content_type="text/plain")

    async def missing(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return html("<h1>Not here</h1>", status=404)

    async def binary(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + bytes(100), content_type="image/png")

    async def data(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.json_response({"answer": 42, "host": request.headers["Host"]})

    for path, handler in [("/page", page), ("/redirect", redirect), ("/big", big), ("/secret", secret),
                          ("/missing", missing), ("/binary", binary), ("/data", data)]:
        fake.route("GET", path, handler)
    async with fake:
        yield fake


def fetcher(audit: InMemoryToolAudit, **policy: object) -> HTTPFetch:
    return HTTPFetch(FetchPolicy(**policy), resolver=RESOLVER, audit=audit)  # type: ignore[arg-type]


def site(server: FakeServer, path: str) -> str:
    return f"http://site.example:{server.port}{path}"


# ------------------------------------------------------------------------------------ refused


async def test_loopback_servers_are_refused_by_default(server: FakeServer, audit: InMemoryToolAudit) -> None:
    fetch = fetcher(audit)
    system_dns = HTTPFetch(audit=audit)  # "localhost" resolves from the hosts file, never the internet
    for url, using in ((f"{server.url}/page", fetch), (f"http://localhost:{server.port}/page", system_dns),
                       (site(server, "/page"), fetch), (f"http://[::ffff:127.0.0.1]:{server.port}/page", fetch)):
        with pytest.raises(FetchRefused, match="loopback") as caught:
            await using.fetch(url)
        assert caught.value.reason == "forbidden_address"
    assert server.requests == []
    assert [r.outcome for r in audit.records] == ["refused"] * 4
    assert {r.reason for r in audit.records} == {"forbidden_address"}


@pytest.mark.parametrize(("host", "problem"), [
    ("intranet.example", "private"),
    ("metadata.example", "metadata"),
    ("rebind.example", "loopback"),
])
async def test_names_resolving_to_forbidden_addresses_are_refused_before_connecting(
        host: str, problem: str, server: FakeServer, audit: InMemoryToolAudit) -> None:
    with pytest.raises(FetchRefused, match=problem):
        await fetcher(audit).fetch(f"http://{host}:{server.port}/page")
    assert server.requests == []


async def test_metadata_is_refused_even_with_private_addresses_allowed(audit: InMemoryToolAudit) -> None:
    fetch = fetcher(audit, allow_private=True)
    for url in ("http://169.254.169.254/latest/meta-data/", "http://metadata.example/computeMetadata/v1/"):
        with pytest.raises(FetchRefused, match="metadata"):
            await fetch.fetch(url)


# ------------------------------------------------------------------------------------ allowed


async def test_loopback_is_fetched_when_explicitly_allowed(server: FakeServer, audit: InMemoryToolAudit) -> None:
    for fetch in (fetcher(audit, allowed_networks=("127.0.0.0/8",)), fetcher(audit, allow_private=True)):
        result = await fetch.fetch(f"{server.url}/page")
        assert result.status == 200 and result.title == "The Page"
        assert result.text == "Home\n\nHeading\n\nFirst paragraph with bold text.\n\n- one\n- two"
    text = result.to_text(20_000)
    assert text.startswith(f"URL: {server.url}/page\nStatus: 200\nContent-Type: text/html\nTitle: The Page\n\n")
    assert "alert" not in text and "color:red" not in text and "enable js" not in text
    record = audit.records[-1]
    assert record.outcome == "ok" and record.exit_code == 200 and record.details["final_url"] == f"{server.url}/page"


async def test_an_allowed_name_connects_to_its_checked_address_with_its_own_host_header(
        server: FakeServer, audit: InMemoryToolAudit) -> None:
    result = await fetcher(audit, allowed_hosts=("site.example",)).fetch(site(server, "/data"))
    assert json.loads(result.text) == {"answer": 42, "host": f"site.example:{server.port}"}
    assert result.content_type == "application/json"


# ------------------------------------------------------------------------------------ redirects


@pytest.mark.parametrize(("target", "problem"), [
    ("http://127.0.0.1:{port}/secret", "loopback"),
    ("http://metadata.example/latest/meta-data/", "metadata"),
    ("http://169.254.169.254/latest/meta-data/iam/", "metadata"),
    ("http://intranet.example/", "private"),
    ("file:///etc/passwd", "http and https"),
])
async def test_redirects_are_checked_again(target: str, problem: str, server: FakeServer,
                                           audit: InMemoryToolAudit) -> None:
    fetch = fetcher(audit, allowed_hosts=("site.example",))
    url = site(server, "/redirect") + "?to=" + target.format(port=server.port)
    with pytest.raises(FetchRefused, match=problem):
        await fetch.fetch(url)
    assert [r.path for r in server.requests] == ["/redirect"]  # the secret was never asked for


async def test_allowed_redirects_are_followed_and_reported(server: FakeServer, audit: InMemoryToolAudit) -> None:
    fetch = fetcher(audit, allowed_hosts=("site.example",))
    result = await fetch.fetch(site(server, "/redirect?to=/secret"))
    assert result.text == "the secret" and result.url == site(server, "/secret")
    assert result.redirects == [site(server, "/redirect?to=/secret")]
    assert "Redirected from: " in result.to_text(1000)


async def test_too_many_redirects(server: FakeServer, audit: InMemoryToolAudit) -> None:
    fetch = fetcher(audit, allowed_hosts=("site.example",), max_redirects=2)
    loop = site(server, "/redirect?to=/redirect%3Fto%3D/redirect%253Fto%253D/secret")
    with pytest.raises(FetchError, match="more than 2 times") as caught:
        await fetch.fetch(loop)
    assert caught.value.reason == "redirects"


# ------------------------------------------------------------------------------------ limits and content


async def test_size_limits_are_applied_and_stated(server: FakeServer, audit: InMemoryToolAudit) -> None:
    fetch = fetcher(audit, allowed_hosts=("site.example",), max_bytes=5000, max_chars=1000)
    result = await fetch.fetch(site(server, "/big"))
    assert result.body_truncated and result.bytes_read == 5000 and len(result.text) == 5000
    text = result.to_text(fetch.policy.max_chars)
    assert "Note: the page is larger than 5000 bytes; only its beginning was read." in text
    assert text.endswith("[page text truncated: showing the first 1000 of 5000 characters]")


async def test_a_server_that_does_not_answer_times_out(audit: InMemoryToolAudit) -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        with pytest.raises(FetchError, match=r"longer than 0\.2 s") as caught:
            await fetcher(audit, allowed_networks=("127.0.0.1/32",), timeout_s=0.2).fetch(f"http://127.0.0.1:{port}/")
        assert caught.value.reason == "timeout"
    finally:
        release.set()
        listener.close()
        await listener.wait_closed()


async def test_errors_and_binary_content(server: FakeServer, audit: InMemoryToolAudit) -> None:
    fetch = fetcher(audit, allowed_hosts=("site.example",))
    with pytest.raises(FetchError, match="answered 404 Not Found: Not here") as caught:
        await fetch.fetch(site(server, "/missing"))
    assert caught.value.reason == "status"
    with pytest.raises(FetchError, match="image/png") as caught:
        await fetch.fetch(site(server, "/binary"))
    assert caught.value.reason == "binary"
    with pytest.raises(FetchError) as caught:
        await fetch.fetch("http://nowhere.example/")
    assert caught.value.reason == "dns"
    assert [r.outcome for r in audit.records] == ["error"] * 3


def test_html_to_text_keeps_structure_and_drops_code() -> None:
    title, text = html_to_text("<title>T &amp; U</title><p>a<br>b</p><pre>x  y</pre><script>x()</script>")
    assert title == "T & U" and text == "a\nb\n\nx  y"


# ------------------------------------------------------------------------------------ agents


async def test_an_agent_gets_refusals_as_error_results(server: FakeServer, audit: InMemoryToolAudit) -> None:
    fetch = fetcher(audit, allowed_hosts=("site.example",))
    _, _, config = scripted(
        reply(call("http_fetch", url="http://169.254.169.254/latest/meta-data/")),
        reply(call("http_fetch", url=site(server, "/page"))),
        "read it",
    )
    result = await LLMAgent("reader", model="script/m", tools=[fetch.as_tool()]).run("read", config)
    assert result.output == "read it"
    refused, fetched = tool_results(result)
    assert refused[1] is True and "FetchRefused" in refused[0] and "metadata" in refused[0]
    assert fetched[1] is False and "Title: The Page" in fetched[0]
    assert [(r.agent, r.run_id, r.outcome) for r in audit.records] == [
        ("reader", result.run_id, "refused"), ("reader", result.run_id, "ok")]
