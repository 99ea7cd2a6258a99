"""``http_fetch``: GET a URL and return its readable text, without opening a door into the network.

:class:`HTTPFetch` fetches with aiohttp through a connector whose DNS resolver is
:class:`~agentadapter.agents.tools.ssrf.GuardedResolver`: every address a name resolves to is
checked before the connection, and only checked addresses are connected to (the ``Host`` header and
TLS name stay the URL's). IP literals are checked up front. Redirects are followed by hand, at most
``max_redirects``, each target checked again the same way. The body is read up to ``max_bytes``
(decompressed), within ``timeout_s`` for the whole fetch; HTML becomes text (scripts, styles and
markup dropped, block structure kept as lines), other text types pass through, binary types are
refused. The text sent to the model is capped at ``max_chars``, and any cut is stated. Each fetch,
refused ones included, leaves an audit record.

The built-in ``http_fetch`` is ``HTTPFetch()``: public addresses only.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from dataclasses import dataclass
from html.parser import HTMLParser

import aiohttp
from yarl import URL

from agentadapter.agents.context import AgentContext
from agentadapter.agents.tools._text import cap_text
from agentadapter.agents.tools.audit import ToolAudit, ToolAuditRecord, caller_of, default_tool_audit, write_audit
from agentadapter.agents.tools.decorator import FunctionTool
from agentadapter.agents.tools.errors import FetchError, FetchRefused
from agentadapter.agents.tools.ssrf import AddressPolicy, GuardedResolver, Resolver, check_url

__all__ = ["FetchPolicy", "FetchResult", "HTTPFetch", "html_to_text", "http_fetch"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "application/x-yaml",
               "application/yaml", "application/rss", "application/atom")


@dataclass(frozen=True, slots=True)
class FetchPolicy(AddressPolicy):
    """What ``http_fetch`` may reach (see :class:`AddressPolicy`) and how much it reads."""

    max_bytes: int = 2 * 1024 * 1024
    """Bytes of the (decompressed) body read at most; the rest is not downloaded."""
    max_chars: int = 20_000
    """Characters of text sent to the model."""
    timeout_s: float = 20.0
    """Seconds for the whole fetch, redirects included."""
    max_redirects: int = 5
    user_agent: str = "AgentAdapter-http_fetch/0.1 (+https://github.com/agentadapter)"


@dataclass(slots=True)
class FetchResult:
    """A fetched page as the model sees it."""

    url: str
    """The final URL, after redirects."""
    status: int
    content_type: str
    title: str
    text: str
    bytes_read: int
    body_truncated: bool
    redirects: list[str]

    def to_text(self, max_chars: int) -> str:
        head = [f"URL: {self.url}", f"Status: {self.status}", f"Content-Type: {self.content_type or 'unknown'}"]
        if self.title:
            head.append(f"Title: {self.title}")
        if self.redirects:
            head.append(f"Redirected from: {' -> '.join(self.redirects)}")
        if self.body_truncated:
            head.append(f"Note: the page is larger than {self.bytes_read} bytes; only its beginning was read.")
        return "\n".join(head) + "\n\n" + cap_text(self.text, max_chars, what="page text")


class HTTPFetch:
    """The http_fetch tool: SSRF-safe GET with size and time limits, returning readable text."""

    def __init__(self, policy: FetchPolicy | None = None, *, resolver: Resolver | None = None,
                 audit: ToolAudit | None = None, name: str = "http_fetch") -> None:
        self.policy = policy or FetchPolicy()
        self.resolver = resolver
        """Where host names are resolved (default: the system's); every answer is checked."""
        self.audit: ToolAudit = audit if audit is not None else default_tool_audit()
        self.name = name

    def as_tool(self, *, name: str | None = None) -> FunctionTool:
        """The tool an agent gets: ``http_fetch(url)``."""
        fetcher = self

        async def http_fetch(context: AgentContext, url: str) -> str:
            """Fetch a web page or text document by URL (http or https) and return its readable text.

            Args:
                url: The absolute URL to fetch, e.g. https://example.com/page.
            """
            result = await fetcher.fetch(url, context=context)
            return result.to_text(fetcher.policy.max_chars)

        return FunctionTool.wrap(http_fetch, name=name or self.name, timeout=self.policy.timeout_s + 5.0)

    async def fetch(self, url: str, *, context: AgentContext | None = None) -> FetchResult:
        """GET ``url`` under the policy. Raises :class:`FetchRefused` or :class:`FetchError`."""
        agent, run_id = caller_of(context)
        record = ToolAuditRecord(self.name, url, "ok", agent=agent, run_id=run_id)
        started = time.monotonic()
        try:
            result = await self._fetch(url)
        except FetchRefused as refusal:
            record.outcome, record.reason, record.output = "refused", refusal.reason, refusal.message
            raise
        except FetchError as error:
            record.outcome, record.reason, record.output = "error", error.reason, error.message
            raise
        except BaseException as exc:
            record.outcome, record.reason = "error", type(exc).__name__
            raise
        else:
            record.exit_code = result.status
            record.details = {"final_url": result.url, "redirects": result.redirects, "bytes": result.bytes_read,
                              "content_type": result.content_type}
            record.output = cap_text(result.text, 2000, what="page text")
            return result
        finally:
            record.duration_ms = (time.monotonic() - started) * 1000.0
            await write_audit(self.audit, record)

    async def _fetch(self, url: str) -> FetchResult:
        policy = self.policy
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy, self.resolver), use_dns_cache=False,
                                         limit=4)
        redirects: list[str] = []
        target = check_url(url, policy)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True,
                                      headers={"User-Agent": policy.user_agent}) as session,
                asyncio.timeout(policy.timeout_s),
            ):
                while True:
                    async with session.get(target, allow_redirects=False,
                                           headers={"Accept": "text/html,text/plain,application/json;q=0.9,*/*;q=0.5"}
                                           ) as response:
                        location = response.headers.get("Location")
                        if response.status in _REDIRECTS and location:
                            if len(redirects) >= policy.max_redirects:
                                raise FetchError(f"{url} redirected more than {policy.max_redirects} times; giving up",
                                                 reason="redirects")
                            redirects.append(str(target))
                            target = check_url(_redirect_target(response.url, location), policy)
                            continue
                        return await self._read(response, redirects)
        except TimeoutError as exc:
            raise FetchError(f"fetching {url} took longer than {policy.timeout_s:g} s; try again later or another "
                             "URL", reason="timeout") from exc
        except aiohttp.ClientConnectorDNSError as exc:
            raise FetchError(f"the host of {url} does not resolve ({exc.os_error}); check the URL",
                             reason="dns") from exc
        except aiohttp.ClientConnectorError as exc:
            raise FetchError(f"could not connect to {exc.host}:{exc.port} ({exc.os_error}); the site may be down",
                             reason="connect") from exc
        except aiohttp.InvalidURL as exc:
            raise FetchRefused(f"{url} is not a URL that can be fetched ({exc})", reason="invalid_url") from exc
        except aiohttp.ClientError as exc:
            raise FetchError(f"fetching {url} failed: {type(exc).__name__}: {exc}", reason="network") from exc

    async def _read(self, response: aiohttp.ClientResponse, redirects: list[str]) -> FetchResult:
        limit = self.policy.max_bytes
        chunks: list[bytes] = []
        size = 0
        truncated = False
        async for chunk in response.content.iter_chunked(65536):
            chunks.append(chunk[: limit - size])
            size += len(chunks[-1])
            if size >= limit:
                truncated = True
                break
        body = b"".join(chunks)
        content_type = response.content_type if response.headers.get("Content-Type") else ""
        final_url = str(response.url)
        if not _is_text(content_type, body):
            raise FetchError(f"{final_url} is {content_type or 'binary content'} ({size}{'+' if truncated else ''} "
                             "bytes), which cannot be shown as text", reason="binary")
        charset = response.charset or _meta_charset(body) or "utf-8"
        try:
            decoded = body.decode(charset, errors="replace")
        except LookupError:
            decoded = body.decode("utf-8", errors="replace")
        title = ""
        if "html" in content_type or (not content_type and "<html" in decoded[:2000].lower()):
            title, decoded = html_to_text(decoded)
        if response.status >= 400:
            excerpt = cap_text(decoded.strip(), 500, what="error page")
            raise FetchError(f"GET {final_url} answered {response.status} {response.reason or ''}".rstrip()
                             + (f": {excerpt}" if excerpt else ""), reason="status")
        return FetchResult(final_url, response.status, content_type, title, decoded.strip(), size, truncated,
                           redirects)


def _redirect_target(current: URL, location: str) -> str:
    try:
        return str(current.join(URL(location)))
    except (ValueError, TypeError) as exc:
        raise FetchError(f"{current} redirected to {location!r}, which is not a valid URL",
                         reason="invalid_redirect") from exc


def _is_text(content_type: str, body: bytes) -> bool:
    if content_type:
        return content_type.startswith(_TEXT_TYPES) or content_type.endswith(("+json", "+xml"))
    sample = body[:1024]
    return b"\x00" not in sample


_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_\-]+)""", re.IGNORECASE)


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii") if match else None


# ------------------------------------------------------------------------------------------ HTML


_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "object", "canvas"})
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt", "figcaption", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "td", "th", "thead", "tr", "ul",
})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skipping: list[str] = []
        self._in_title = False
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP:
            self._skipping.append(tag)
        elif tag in _BLOCK and not self._skipping:
            self.parts.append("\n- " if tag == "li" else "\n")
        if tag == "pre":
            self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP:
            if tag in self._skipping:
                while self._skipping and self._skipping.pop() != tag:
                    pass
        elif tag in _BLOCK and tag not in ("li", "br") and not self._skipping:
            self.parts.append("\n")
        if tag == "pre":
            self._pre = max(self._pre - 1, 0)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skipping:
            # Source line breaks are just spaces in HTML, except inside <pre>.
            self.parts.append(data if self._pre else re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> tuple[str, str]:
    """``(title, text)`` of an HTML document: markup, scripts and styles dropped, blocks as lines."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # malformed beyond what the parser forgives: keep what it got
        pass
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = html.unescape(" ".join("".join(parser.title).split()))
    return title, text


http_fetch = HTTPFetch().as_tool()
"""The built-in ``http_fetch`` tool: public addresses only, default limits, the default audit."""

