"""The dashboard's routes: sign-in, pages, the htmx fragments they poll, the run's event stream, actions.

A page checks the session cookie (:mod:`.session`) and the caller's role for what it shows, asks
:mod:`agentadapter.service.dashboard` for its view and renders a template. Actions (cancel a run, decide a
paused run's tool calls, run an agent or a workflow) are form posts with a CSRF token, done by the same
services as the API's routes.
An id of another tenant (or no such id) is the 404 page, exactly as an unknown one.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from agentadapter.server.auth import Principal
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.sse import SSE_HEADERS, sse_stream
from agentadapter.server.state import AppState
from agentadapter.server.ui.session import COOKIE_NAME, SESSION_MAX_AGE_S, SealedSession, SessionSealer
from agentadapter.service import approvals, dashboard
from agentadapter.service import runs as run_service
from agentadapter.service.common import Caller
from agentadapter.service.errors import Conflict, InvalidInput, NotAllowed, NotFound, PaymentRequired, ServiceError
from agentadapter.service.runs import RunRequest
from agentadapter.store.errors import RecordNotFound

__all__ = ["UI_PATH", "router"]

UI_PATH = "/ui"
_HERE = Path(__file__).parent
_STATIC = _HERE / "static"
# The files served at /ui/static/..., found once: a request can only name one of them (no path walking).
_ASSETS = {p.relative_to(_STATIC).as_posix(): p for p in _STATIC.rglob("*") if p.is_file()}
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_RUN_STATUSES = ("queued", "running", "paused", "completed", "failed", "cancelled")
_MAX_INPUT_CHARS = 100_000
_MAX_REASON_CHARS = 2000  # as the API's ApprovalDecisionIn

templates = Jinja2Templates(directory=str(_HERE / "templates"))
router = APIRouter(prefix=UI_PATH, include_in_schema=False)


def _money(value: Any) -> str:
    if value is None:
        return "-"
    amount = float(value)
    return f"${amount:,.6f}" if 0 < abs(amount) < 0.01 else f"${amount:,.4f}"


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "-" if value is None else str(value)


def _ms(value: Any) -> str:
    if value is None:
        return "-"
    number = float(value)
    return f"{number / 1000:.2f} s" if number >= 1000 else f"{number:.0f} ms"


def _percent(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.1f}%"


templates.env.filters.update(money=_money, when=_when, ms=_ms, percent=_percent)


# ------------------------------------------------------------------------------------------ session


class Signed:
    """A signed-in request: its principal, its session and the CSRF token its forms carry."""

    def __init__(self, state: AppState, principal: Principal, session: SealedSession, csrf: str) -> None:
        self.state = state
        self.principal = principal
        self.session = session
        self.csrf = csrf


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.agentadapter
    return state


@functools.lru_cache(maxsize=8)
def _sealer_for(secret_key: str) -> SessionSealer:
    return SessionSealer(secret_key)


def _sealer(state: AppState) -> SessionSealer:
    return _sealer_for(state.settings.secret_key)


def _client(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


async def _signed(request: Request) -> Signed | None:
    """The signed-in caller, or None (no cookie, a tampered or expired one, or a key no longer valid)."""
    state = _state(request)
    sealer = _sealer(state)
    session = sealer.open(request.cookies.get(COOKIE_NAME))
    if session is None:
        return None
    try:
        principal = await state.auth.authenticate(f"Bearer {session.credential}", client=_client(request))
    except HTTPProblem:
        return None
    return Signed(state, principal, session, sealer.csrf_token(session))


def _to_login(request: Request) -> Response:
    if request.headers.get("hx-request"):  # an htmx poll: send the whole page to the sign-in form
        return Response(status_code=204, headers={"HX-Redirect": f"{UI_PATH}/login"})
    return RedirectResponse(f"{UI_PATH}/login", status_code=303)


def _page(request: Request, name: str, signed: Signed | None, status_code: int = 200, **context: Any) -> Response:
    values: dict[str, Any] = {
        "signed": signed,
        "csrf": signed.csrf if signed else "",
        "ui": UI_PATH,
        "path": request.url.path,
        **context,
    }
    response = templates.TemplateResponse(request, name, values, status_code=status_code)
    # Not the API's no-referrer: with it, browsers send "Origin: null" on our own form posts, which then
    # cannot be told from a cross-site post.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _problem(request: Request, signed: Signed | None, status: int, message: str) -> Response:
    return _page(request, "error.html", signed, status_code=status, status=status, message=message)


def _not_found(request: Request, signed: Signed | None, what: str) -> Response:
    return _problem(request, signed, 404, f"No {what} with this id in your tenant.")


def _refused(request: Request, signed: Signed, resource: str, action: str = "read") -> Response | None:
    if signed.principal.can(resource, action):
        return None
    return _problem(
        request,
        signed,
        403,
        f"Your key's role ({signed.principal.role}) or scopes do not allow {action} access to {resource}.",
    )


async def _allowed(request: Request, resource: str) -> Signed | Response:
    """The signed-in caller allowed to read ``resource``, or the answer to give instead (the sign-in form,
    or a 403 page)."""
    signed = await _signed(request)
    if signed is None:
        return _to_login(request)
    refused = _refused(request, signed, resource)
    return signed if refused is None else refused


def _status_of(exc: ServiceError) -> int:
    for kind, status in (
        (InvalidInput, 422),
        (NotAllowed, 403),
        (NotFound, 404),
        (Conflict, 409),
        (PaymentRequired, 402),
    ):
        if isinstance(exc, kind):
            return status
    return 503


def _uuid(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def _same_origin(request: Request) -> bool:
    """A form post from one of our own pages (browsers send Origin on every POST).

    Only the host and port are compared with the request's Host: behind a proxy that ends TLS, the page's
    origin is https while the request reaching the server is http."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None  # no Origin at all: not a browser's cross-site post
    host = request.headers.get("host", "")
    _, _, origin_host = origin.rstrip("/").partition("://")
    return bool(host) and origin_host.lower() == host.lower()


async def _form(request: Request) -> Mapping[str, Any]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def _signed_post(request: Request) -> tuple[Signed | None, Mapping[str, Any], Response | None]:
    """The signed-in caller of a form post and its fields, or the refusal to answer with."""
    signed = await _signed(request)
    if signed is None:
        return None, {}, _to_login(request)
    form = await _form(request)
    if not _same_origin(request) or not _sealer(signed.state).check_csrf(signed.session, form.get("csrf")):
        return (
            signed,
            form,
            _problem(
                request,
                signed,
                403,
                "This form is stale or did not come from this dashboard; reload the page and try again.",
            ),
        )
    return signed, form, None


# ------------------------------------------------------------------------------------------ sign-in


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse(f"{UI_PATH}/runs", status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    signed = await _signed(request)
    if signed is not None:
        return RedirectResponse(f"{UI_PATH}/runs", status_code=303)
    return _page(request, "login.html", None)


@router.post("/login")
async def login(request: Request) -> Response:
    state = _state(request)
    if not _same_origin(request):
        return _problem(request, None, 403, "Sign in from this dashboard's own page.")
    form = await _form(request)
    credential = str(form.get("credential", "")).strip()
    if not credential:
        return _page(request, "login.html", None, status_code=422, error="Enter a tenant API key or a JWT.")
    try:
        await state.auth.authenticate(f"Bearer {credential}", client=_client(request))
    except HTTPProblem as exc:
        return _page(request, "login.html", None, status_code=exc.status, error=exc.message)
    response = RedirectResponse(f"{UI_PATH}/runs", status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        _sealer(state).seal(credential),
        max_age=SESSION_MAX_AGE_S,
        path=UI_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    signed, _, refused = await _signed_post(request)
    if refused is not None and signed is not None:
        return refused
    response = RedirectResponse(f"{UI_PATH}/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path=UI_PATH, httponly=True, samesite="strict")
    return response


@router.get("/static/{name:path}")
async def static(name: str) -> Response:
    path = _ASSETS.get(name)
    if path is None:
        return Response("no such asset", status_code=404, media_type="text/plain")
    media_type = _MEDIA_TYPES.get(path.suffix, "text/plain; charset=utf-8")  # the licenses, VERSIONS
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})


# ------------------------------------------------------------------------------------------ runs


def _status_filter(raw: str | None) -> str | None:
    return raw if raw in _RUN_STATUSES else None


@router.get("/runs")
async def runs_page(request: Request, status: str | None = None, agent: str | None = None) -> Response:
    signed = await _allowed(request, "runs")
    if isinstance(signed, Response):
        return signed
    chosen, agent_id = _status_filter(status), _uuid(agent or "")
    tenant = signed.principal.tenant_id
    runs = await dashboard.list_runs(signed.state.db, tenant, status=chosen, agent_id=agent_id)
    agents = await dashboard.list_agents(signed.state.db, tenant) if signed.principal.can("agents", "read") else []
    query = urlencode({k: v for k, v in (("status", chosen), ("agent", agent_id)) if v})
    return _page(
        request,
        "runs.html",
        signed,
        runs=runs,
        status=chosen,
        statuses=_RUN_STATUSES,
        agents=agents,
        agent_id=agent_id,
        query=query,
    )


@router.get("/runs/table")
async def runs_table(request: Request, status: str | None = None, agent: str | None = None) -> Response:
    signed = await _allowed(request, "runs")
    if isinstance(signed, Response):
        return signed
    chosen = _status_filter(status)
    runs = await dashboard.list_runs(
        signed.state.db, signed.principal.tenant_id, status=chosen, agent_id=_uuid(agent or "")
    )
    return _page(request, "runs_table.html", signed, runs=runs, status=chosen)


async def _run_or_404(request: Request, signed: Signed, raw_id: str) -> dict[str, Any] | Response:
    run_id = _uuid(raw_id)
    if run_id is None:
        return _not_found(request, signed, "run")
    try:
        return await dashboard.run_view(signed.state.db, signed.principal.tenant_id, run_id)
    except (RecordNotFound, NotFound):
        return _not_found(request, signed, "run")


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str) -> Response:
    return await _run_template(request, run_id, "run.html")


@router.get("/runs/{run_id}/summary")
async def run_summary(request: Request, run_id: str) -> Response:
    """The run page's live part (status, usage, approvals), polled while the run is not over."""
    return await _run_template(request, run_id, "run_summary.html")


async def _run_template(request: Request, run_id: str, template: str) -> Response:
    signed = await _allowed(request, "runs")
    if isinstance(signed, Response):
        return signed
    run = await _run_or_404(request, signed, run_id)
    if isinstance(run, Response):
        return run
    return _page(request, template, signed, run=run, can_cancel=signed.principal.can("runs", "write"))


@router.get("/runs/{run_id}/events")
async def run_events(request: Request, run_id: str) -> Response:
    """The run's events as SSE, as ``/v1/runs/{id}/events`` sends them, for the page's ``EventSource``
    (which cannot send an Authorization header: the session cookie authenticates it)."""
    signed = await _signed(request)
    if signed is None or not signed.principal.can("runs", "read"):
        return Response("sign in again", status_code=401, media_type="text/plain")
    run = await _run_or_404(request, signed, run_id)
    if isinstance(run, Response):
        return Response("no such run", status_code=404, media_type="text/plain")
    last = request.headers.get("last-event-id", "").strip()
    after = int(last) if last.isascii() and last.isdigit() and len(last) < 10 else 0
    state = signed.state
    events = run_service.run_events(state, signed.principal.tenant_id, run["id"], after)
    stop = state.drain.started if state.drain is not None else None
    return StreamingResponse(
        sse_stream(events, heartbeat_s=state.server.sse_heartbeat_s, stop=stop),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


@router.post("/runs/{run_id}/cancel")
async def cancel_run(request: Request, run_id: str) -> Response:
    signed, _, refused = await _signed_post(request)
    if refused is not None:
        return refused
    assert signed is not None
    if (no := _refused(request, signed, "runs", "write")) is not None:
        return no
    run = await _run_or_404(request, signed, run_id)
    if isinstance(run, Response):
        return run
    try:
        async with signed.state.db.write_session() as session:
            await run_service.cancel_run(session, signed.state, Caller(signed.principal), run["id"])
    except ServiceError as exc:
        return _problem(request, signed, _status_of(exc), exc.message)
    return RedirectResponse(f"{UI_PATH}/runs/{run['id']}", status_code=303)


def _decisions(form: Mapping[str, Any], pending: list[dict[str, Any]]) -> list[approvals.Decision] | str:
    """The approvals form's decisions, one per pending call, or what is wrong with the form.

    A call's own choice (``decision:<call id>``, the radio buttons shown when several calls wait) wins;
    otherwise the button pressed (``decision``: Approve or Reject) decides it. A reason is optional."""
    pressed = form.get("decision")
    decisions: list[approvals.Decision] = []
    for call in pending:
        call_id = call["call_id"]
        choice = form.get(f"decision:{call_id}") or pressed
        if choice not in ("approve", "reject"):
            return f"Choose Approve or Reject for the call of {call['tool']} ({call_id})."
        reason = str(form.get(f"reason:{call_id}", "")).strip()
        if len(reason) > _MAX_REASON_CHARS:
            return f"The reason for call {call_id} is longer than {_MAX_REASON_CHARS} characters; shorten it."
        decisions.append(approvals.Decision(call_id, choice == "approve", reason or None))
    return decisions


@router.post("/runs/{run_id}/approvals")
async def decide_approvals(request: Request, run_id: str) -> Response:
    """Approve or reject the pending tool calls of a paused run (as ``POST /v1/runs/{id}/approvals``); the run
    resumes and its page follows it live."""
    signed, form, refused = await _signed_post(request)
    if refused is not None:
        return refused
    assert signed is not None
    if (no := _refused(request, signed, "runs", "write")) is not None:
        return no
    run = await _run_or_404(request, signed, run_id)
    if isinstance(run, Response):
        return run
    if run["status"] != "paused":
        return _problem(
            request, signed, 409, f"This run is {run['status']}, not paused for approval: nothing to decide."
        )
    decisions = _decisions(form, run["pending"])
    if isinstance(decisions, str):
        return _problem(request, signed, 422, decisions)
    try:
        async with signed.state.db.write_session() as session:
            await approvals.decide(session, signed.state, Caller(signed.principal), run["id"], decisions)
    except (RecordNotFound, NotFound):
        return _not_found(request, signed, "run")
    except ServiceError as exc:
        return _problem(request, signed, _status_of(exc), exc.message)
    return RedirectResponse(f"{UI_PATH}/runs/{run['id']}", status_code=303)


# ------------------------------------------------------------------------------------------ costs, backends


@router.get("/costs")
async def costs_page(request: Request, days: int = 30, by: str = "model") -> Response:
    signed = await _allowed(request, "usage")
    if isinstance(signed, Response):
        return signed
    days = min(max(days, 1), 366)
    try:
        report = await dashboard.cost_report(signed.state, signed.principal.tenant_id, days=days, chart_by=by)
    except InvalidInput as exc:
        return _problem(request, signed, 422, exc.message)
    chart = {"days": report.days, "series": report.series}
    return _page(request, "costs.html", signed, report=report, chart=chart, days=days, groups=dashboard.COST_GROUPS)


@router.get("/backends")
async def backends_page(request: Request) -> Response:
    signed = await _allowed(request, "providers")
    if isinstance(signed, Response):
        return signed
    llm = signed.state.llm
    return _page(
        request, "backends.html", signed, targets=dashboard.backend_health(llm), models=dashboard.model_catalog(llm)
    )


@router.get("/backends/table")
async def backends_table(request: Request) -> Response:
    signed = await _allowed(request, "providers")
    if isinstance(signed, Response):
        return signed
    return _page(request, "backends_table.html", signed, targets=dashboard.backend_health(signed.state.llm))


# ------------------------------------------------------------------------------------------ agents, workflows


@router.get("/agents")
async def agents_page(request: Request) -> Response:
    signed = await _allowed(request, "agents")
    if isinstance(signed, Response):
        return signed
    agents = await dashboard.list_agents(signed.state.db, signed.principal.tenant_id)
    workflows = []
    if signed.principal.can("workflows", "read"):
        workflows = await dashboard.list_workflows(signed.state.db, signed.principal.tenant_id)
    return _page(request, "agents.html", signed, agents=agents, workflows=workflows)


@router.get("/agents/{agent_id}")
async def agent_page(request: Request, agent_id: str) -> Response:
    return await _detail_page(request, agent_id, "agents", "agent", dashboard.agent_view)


@router.get("/workflows/{workflow_id}")
async def workflow_page(request: Request, workflow_id: str) -> Response:
    return await _detail_page(request, workflow_id, "workflows", "workflow", dashboard.workflow_view)


async def _detail_page(request: Request, raw_id: str, resource: str, what: str,
                       load: Callable[[Any, uuid.UUID, uuid.UUID], Awaitable[Any]]) -> Response:
    """The page of one agent or workflow (``<what>.html``), with a run form where the caller may run it."""
    signed = await _allowed(request, resource)
    if isinstance(signed, Response):
        return signed
    parsed = _uuid(raw_id)
    try:
        if parsed is None:
            raise NotFound(f"no such {what}")
        view = await load(signed.state.db, signed.principal.tenant_id, parsed)
    except (RecordNotFound, NotFound):
        return _not_found(request, signed, what)
    return _page(request, f"{what}.html", signed, **{what: view}, can_run=signed.principal.can("runs", "write"))


async def _start(request: Request, kind: str, raw_id: str) -> Response:
    signed, form, refused = await _signed_post(request)
    if refused is not None:
        return refused
    assert signed is not None
    if (no := _refused(request, signed, "runs", "write")) is not None:
        return no
    target = _uuid(raw_id)
    if target is None:
        return _not_found(request, signed, kind)
    text = str(form.get("input", "")).strip()
    if len(text) > _MAX_INPUT_CHARS:
        return _problem(request, signed, 422, f"The input is longer than {_MAX_INPUT_CHARS} characters; shorten it.")
    caller = Caller(signed.principal)
    try:
        async with signed.state.db.write_session() as session:
            if kind == "agent":
                run = await run_service.start_agent_run(session, signed.state, caller, target, RunRequest(input=text))
            else:
                run = await run_service.start_workflow_run(
                    session, signed.state, caller, target, RunRequest(input=text or None)
                )
    except (RecordNotFound, NotFound):
        return _not_found(request, signed, kind)
    except ServiceError as exc:
        return _problem(request, signed, _status_of(exc), exc.message)
    return RedirectResponse(f"{UI_PATH}/runs/{run.id}", status_code=303)


@router.post("/agents/{agent_id}/run")
async def run_agent(request: Request, agent_id: str) -> Response:
    return await _start(request, "agent", agent_id)


@router.post("/workflows/{workflow_id}/run")
async def run_workflow(request: Request, workflow_id: str) -> Response:
    return await _start(request, "workflow", workflow_id)


# ------------------------------------------------------------------------------------------ evaluations


@router.get("/evaluations")
async def evaluations_page(request: Request) -> Response:
    signed = await _signed(request)
    if signed is None:
        return _to_login(request)
    tenant = signed.principal.tenant_id
    experiments = archives = None
    if signed.principal.can("experiments", "read"):
        experiments = await dashboard.experiments_list(signed.state.db, tenant)
    if signed.principal.can("archives", "read"):
        archives = await dashboard.archives_list(signed.state.db, tenant)
    return _page(request, "evaluations.html", signed, experiments=experiments, archives=archives)
