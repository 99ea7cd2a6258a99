"""The API's dependencies, as ``Annotated`` aliases that routes declare as parameter types.

``StateDep`` (the server's parts), ``SessionDep`` (a read session) and ``WriteSessionDep`` (a write
session; the caller commits), ``CurrentPrincipal`` (who calls: tenant, user, role), one
``<Resource>Read`` / ``<Resource>Write`` alias per resource that also enforces the role and scopes,
``PageDep`` (``limit`` and ``cursor``) and ``RequestId``. A write session is opened only after the
caller is authenticated, because authenticating may itself write (a JWT user seen for the first
time) and SQLite has one writer at a time. Every dependency is ``async def``: FastAPI runs a plain
``def`` dependency in a worker thread, which costs more than the work itself here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.server.auth import Principal
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.state import AppState

__all__ = [
    "AdminOnly",
    "AgentsRead",
    "AgentsWrite",
    "CompletionsWrite",
    "CurrentPrincipal",
    "PageDep",
    "ModelsRead",
    "Pagination",
    "ProviderKeysAdmin",
    "ProviderKeysRead",
    "ProvidersRead",
    "RequestId",
    "RunsRead",
    "RunsWrite",
    "SessionDep",
    "SettingsRead",
    "SettingsWrite",
    "StateDep",
    "WorkflowsRead",
    "WorkflowsWrite",
    "WriteSessionDep",
    "require",
    "MAX_DB_INT",
    "check_request_text",
]

MAX_DB_INT = 2**31 - 1
"""The largest whole number an ``INTEGER`` column holds on PostgreSQL (SQLite's hold more): the bound of
every integer path and query parameter that reaches a query (versions, seqs, offsets), so that a number
out of range is a 422 here rather than the driver's overflow error."""


def _unsafe(text: str) -> bool:
    # NUL: PostgreSQL's text cannot hold it (asyncpg refuses the query). A lone surrogate cannot be
    # encoded as UTF-8 at all. isascii() first: the usual value is plain ASCII and costs nothing more.
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_request_text(request: Request) -> None:
    """Refuse (422) a path or query string with a NUL byte or a lone surrogate, before anything reads it:
    no string reaches a query or a log that the database or the encoder would fail on."""
    if _unsafe(request.scope["path"]):
        raise HTTPProblem(422, "the path holds a NUL byte or a lone surrogate; remove it", code="invalid_characters",
                       param="path")
    for name, value in request.query_params.multi_items():
        if _unsafe(name) or _unsafe(value):
            raise HTTPProblem(422, f"the query parameter {name!r} holds a NUL byte or a lone surrogate; remove it",
                           code="invalid_characters", param=name if not _unsafe(name) else None)

async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.agentadapter
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_principal(request: Request) -> Principal:
    # The bearer scheme is declared in the OpenAPI document by app.py (a security dependency here
    # would cost every request a dependency to solve).
    state: AppState = request.app.state.agentadapter
    check_request_text(request)  # here: every /v1 route depends on this, so no dependency more per request
    # The peer's address (behind a proxy, the one uvicorn takes from X-Forwarded-For for trusted proxies):
    # what repeated failed authentications are throttled by.
    client = request.client.host if request.client is not None else None
    authorization = request.headers.get("authorization")
    if authorization is None:
        # Anthropic-format clients (the anthropic SDK, Claude Code) send their key as x-api-key.
        api_key = request.headers.get("x-api-key")
        authorization = f"Bearer {api_key}" if api_key else None
    principal = await state.auth.authenticate(authorization, client=client)
    if state.limiter is not None:  # None when every limit is off: no work at all then
        await state.limiter.check(principal)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(resource: str, action: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets the caller through only with ``action`` (read, write, admin) on ``resource``."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(resource, action):
            raise HTTPProblem(
                403, f"{action} access to {resource} needs a role or scope this {principal.kind.replace('_', ' ')} "
                     f"does not have (its role is {principal.role})", code="insufficient_permissions",
                details={"resource": resource, "action": action, "role": principal.role,
                         "scopes": sorted(principal.scopes)})
        return principal

    check.__name__ = f"require_{resource}_{action}"
    return check


AgentsRead = Annotated[Principal, Depends(require("agents", "read"))]
AgentsWrite = Annotated[Principal, Depends(require("agents", "write"))]
RunsRead = Annotated[Principal, Depends(require("runs", "read"))]
RunsWrite = Annotated[Principal, Depends(require("runs", "write"))]
WorkflowsRead = Annotated[Principal, Depends(require("workflows", "read"))]
WorkflowsWrite = Annotated[Principal, Depends(require("workflows", "write"))]
SettingsRead = Annotated[Principal, Depends(require("settings", "read"))]
SettingsWrite = Annotated[Principal, Depends(require("settings", "write"))]
ProvidersRead = Annotated[Principal, Depends(require("providers", "read"))]
ProviderKeysRead = Annotated[Principal, Depends(require("provider_keys", "read"))]
ProviderKeysAdmin = Annotated[Principal, Depends(require("provider_keys", "admin"))]
CompletionsWrite = Annotated[Principal, Depends(require("completions", "write"))]
ModelsRead = Annotated[Principal, Depends(require("models", "read"))]
AdminOnly = Annotated[Principal, Depends(require("audit", "admin"))]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    state: AppState = request.app.state.agentadapter
    async with state.db.session() as session:
        yield session


async def get_write_session(request: Request, principal: CurrentPrincipal) -> AsyncIterator[AsyncSession]:
    state: AppState = request.app.state.agentadapter
    async with state.db.write_session() as session:
        yield session


# scope="function": the session closes (its connection goes back to the pool, the SQLite write lock
# is released) when the route returns, not after the response has been sent.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[AsyncSession, Depends(get_write_session, scope="function")]


async def get_request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


RequestId = Annotated[str | None, Depends(get_request_id)]


@dataclass(slots=True)
class Pagination:
    limit: int
    cursor: str | None


async def get_pagination(
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page.")] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
) -> Pagination:
    return Pagination(limit, cursor)


PageDep = Annotated[Pagination, Depends(get_pagination)]
