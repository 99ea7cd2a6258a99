"""``GET /``: what this server is and where its documentation lives, for a person or a script.

A browser (``Accept: text/html``) gets a short page with links to the interactive docs (``/docs``,
Swagger UI), the reference (``/redoc``), the OpenAPI document and the health checks; anything else
gets the same as JSON. The docs pages themselves are served by the application with their assets
from the package (``fastapi-offline``), so they work with no network. No authentication: nothing
here is a tenant's.
"""

from __future__ import annotations

from html import escape
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from agentadapter.server.routes._prefix import API_PREFIX

router = APIRouter(tags=["operations"])

DOCS_PATH = "/docs"
DOCS_ASSETS_PATH = "/docs/static"
REDOC_PATH = "/redoc"

_LINKS = (
    ("docs", DOCS_PATH, "interactive API documentation (Swagger UI)"),
    ("redoc", REDOC_PATH, "API reference (ReDoc)"),
    ("openapi", "/openapi.json", "the OpenAPI document"),
    ("api", API_PREFIX, "the REST API: authenticate with Authorization: Bearer <tenant API key>"),
    ("health", "/healthz", "liveness"),
    ("ready", "/readyz", "readiness: the database (and Redis when configured) answer"),
)


def _version() -> str:
    try:
        return version("agentadapter")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def about() -> dict[str, Any]:
    """What ``GET /`` answers as JSON."""
    return {
        "name": "AgentAdapter",
        "version": _version(),
        "description": "Agents, runs, workflows and an OpenAI-compatible gateway over any LLM backend.",
        "links": {name: path for name, path, _ in _LINKS},
    }


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    """What this server is, with links to its documentation (HTML for a browser, JSON otherwise)."""
    info = about()
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse(info)
    items = "\n".join(
        f'<li><a href="{escape(path)}">{escape(path)}</a> - {escape(text)}</li>' for _, path, text in _LINKS
    )
    page = (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>AgentAdapter {escape(info['version'])}</title></head>\n<body>\n"
        f"<h1>AgentAdapter {escape(info['version'])}</h1>\n<p>{escape(info['description'])}</p>\n"
        f"<ul>\n{items}\n</ul>\n</body></html>\n"
    )
    return HTMLResponse(page)
