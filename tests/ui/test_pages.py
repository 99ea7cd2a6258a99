"""The dashboard's pages over the app's ASGI interface (no browser): sign-in and its cookie, the CSP,
roles, CSRF, unknown and foreign ids, the assets, and the event stream's authentication.

The browser tests (``test_dashboard.py``) show the pages working in Chromium; these pin the rules
around them, fast, and run where Chromium is not installed.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from server.conftest import Api

BASE = "http://testserver"
SAME_SITE = {"origin": BASE}


async def _sign_in(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post("/ui/login", data={"credential": key}, headers=SAME_SITE)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/runs"


async def _csrf(client: httpx.AsyncClient, path: str) -> str:
    page = (await client.get(path)).text
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


async def test_pages_send_to_sign_in_and_htmx_polls_redirect(api: Api) -> None:
    response = await api.client.get("/ui/runs")
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    poll = await api.client.get("/ui/runs/table", headers={"hx-request": "true"})
    assert poll.status_code == 204 and poll.headers["hx-redirect"] == "/ui/login"
    assert (await api.client.get("/ui")).headers["location"] == "/ui/runs"


async def test_the_pages_csp_allows_no_inline_script(api: Api) -> None:
    response = await api.client.get("/ui/login")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in response.text  # every script is a file of /ui/static
    assert (await api.client.get("/v1/runs")).headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )  # the API's own policy is untouched


async def test_sign_in_seals_the_key_in_a_strict_httponly_cookie(api: Api) -> None:
    keys = await api.tenant()
    response = await api.client.post("/ui/login", data={"credential": keys.admin}, headers=SAME_SITE)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert keys.admin not in cookie and keys.admin not in response.headers["location"]
    assert "Secure" not in cookie  # plain http here; https pages get Secure
    assert (await api.client.get("/ui/runs")).status_code == 200


@pytest.mark.parametrize(("credential", "status"), [("", 422), ("aa_not_a_key", 401)])
async def test_sign_in_refuses_an_empty_or_wrong_key(api: Api, credential: str, status: int) -> None:
    response = await api.client.post("/ui/login", data={"credential": credential}, headers=SAME_SITE)
    assert response.status_code == status
    assert "set-cookie" not in response.headers
    assert 'id="login-error"' in response.text


async def test_sign_in_from_another_site_is_refused(api: Api) -> None:
    keys = await api.tenant()
    response = await api.client.post(
        "/ui/login", data={"credential": keys.admin}, headers={"origin": "http://elsewhere.test"}
    )
    assert response.status_code == 403 and "set-cookie" not in response.headers


async def test_a_tampered_cookie_is_no_session(api: Api) -> None:
    keys = await api.tenant()
    await _sign_in(api.client, keys.admin)
    sealed = api.client.cookies["agentadapter_ui"]
    api.client.cookies.set(
        "agentadapter_ui", sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB"), path="/ui"
    )
    response = await api.client.get("/ui/runs")
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"


async def test_a_viewer_sees_but_cannot_run_or_cancel(api: Api) -> None:
    agent = await api.create_agent(model="test/echo")
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})).json()
    await api.wait_run(run["id"])
    keys = await api.tenant()
    await _sign_in(api.client, keys.viewer)
    page = await api.client.get(f"/ui/agents/{agent['id']}")
    assert page.status_code == 200 and 'id="run-agent"' not in page.text
    token = await _csrf(api.client, "/ui/runs")
    refused = await api.client.post(
        f"/ui/agents/{agent['id']}/run", data={"input": "hi", "csrf": token}, headers=SAME_SITE
    )
    assert refused.status_code == 403
    cancel = await api.client.post(f"/ui/runs/{run['id']}/cancel", data={"csrf": token}, headers=SAME_SITE)
    assert cancel.status_code == 403
    runs = (await api.request("GET", "/v1/runs")).json()["data"]
    assert [r["id"] for r in runs] == [run["id"]]  # nothing else ran


async def test_cancelling_an_ended_run_says_so(api: Api) -> None:
    agent = await api.create_agent(model="test/echo")
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})).json()
    await api.wait_run(run["id"])
    keys = await api.tenant()
    await _sign_in(api.client, keys.member)
    token = await _csrf(api.client, "/ui/runs")
    response = await api.client.post(f"/ui/runs/{run['id']}/cancel", data={"csrf": token}, headers=SAME_SITE)
    assert response.status_code == 409 and 'id="error-message"' in response.text


async def test_unknown_malformed_and_foreign_ids_are_the_404_page(any_api: Api) -> None:
    other = await any_api.create_agent(tenant="b", model="test/echo")
    foreign = (
        await any_api.request("POST", "/v1/runs", tenant="b", json={"agent_id": other["id"], "input": "x"})
    ).json()
    keys = await any_api.tenant()
    await _sign_in(any_api.client, keys.admin)
    for path in (
        f"/ui/runs/{foreign['id']}",
        "/ui/runs/not-a-uuid",
        f"/ui/runs/{uuid.uuid4()}",
        f"/ui/runs/{foreign['id']}/summary",
        f"/ui/agents/{other['id']}",
        "/ui/agents/x",
        f"/ui/workflows/{uuid.uuid4()}",
    ):
        response = await any_api.client.get(path)
        assert response.status_code == 404, path
        assert 'id="error-status"' in response.text
        assert str(foreign["id"]) not in response.text.replace(path, "")
    events = await any_api.client.get(f"/ui/runs/{foreign['id']}/events")
    assert events.status_code == 404


async def test_the_event_stream_needs_a_session(api: Api) -> None:
    agent = await api.create_agent(model="test/echo")
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})).json()
    await api.wait_run(run["id"])
    assert (await api.client.get(f"/ui/runs/{run['id']}/events")).status_code == 401
    keys = await api.tenant()
    await _sign_in(api.client, keys.viewer)
    stream = await api.client.get(f"/ui/runs/{run['id']}/events")
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert "event: run_finished" in stream.text and "event: agent_started" in stream.text


async def test_assets_come_from_the_package_and_nothing_else(api: Api) -> None:
    for name, kind in (
        ("vendor/htmx.min.js", "text/javascript"),
        ("vendor/uPlot.iife.min.js", "text/javascript"),
        ("dashboard.css", "text/css"),
        ("vendor/VERSIONS", "text/plain"),
    ):
        response = await api.client.get(f"/ui/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind), name
    for name in ("../pages.py", "..%2Fpages.py", "../templates/base.html", "nothing.js"):
        assert (await api.client.get(f"/ui/static/{name}")).status_code == 404, name


async def test_costs_backends_and_evaluations_render_for_a_new_tenant(api: Api) -> None:
    keys = await api.tenant()
    await _sign_in(api.client, keys.viewer)
    costs = await api.client.get("/ui/costs?days=7")
    assert costs.status_code == 200 and 'id="cost-data"' in costs.text and "No usage yet." in costs.text
    assert (await api.client.get("/ui/costs?days=100000")).status_code == 200  # brought within a year
    backends = await api.client.get("/ui/backends")
    assert backends.status_code == 200 and "openai/gpt-4o-mini" in backends.text
    evaluations = await api.client.get("/ui/evaluations")
    assert evaluations.status_code == 200 and 'id="experiments"' in evaluations.text


async def test_sign_out_needs_the_token_and_ends_the_session(api: Api) -> None:
    keys = await api.tenant()
    await _sign_in(api.client, keys.admin)
    assert (await api.client.post("/ui/logout", data={"csrf": "x"}, headers=SAME_SITE)).status_code == 403
    token = await _csrf(api.client, "/ui/runs")
    response = await api.client.post("/ui/logout", data={"csrf": token}, headers=SAME_SITE)
    assert response.status_code == 303 and 'agentadapter_ui=""' in response.headers["set-cookie"]


async def test_the_runs_list_filters_by_status_and_agent(api: Api) -> None:
    first, second = await api.create_agent(model="test/echo"), await api.create_agent(model="test/echo")
    runs = {}
    for agent in (first, second):
        run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})).json()
        runs[agent["id"]] = (await api.wait_run(run["id"]))["id"]
    keys = await api.tenant()
    await _sign_in(api.client, keys.viewer)
    every = (await api.client.get("/ui/runs")).text
    assert all(f'data-run="{run_id}"' in every for run_id in runs.values())
    only_first = (await api.client.get(f"/ui/runs?agent={first['id']}&status=completed")).text
    assert f'data-run="{runs[first["id"]]}"' in only_first and f'data-run="{runs[second["id"]]}"' not in only_first
    assert f"/ui/runs/table?status=completed&amp;agent={first['id']}" in only_first  # the poll keeps the filters
    table = (await api.client.get(f"/ui/runs/table?agent={second['id']}")).text
    assert f'data-run="{runs[second["id"]]}"' in table and f'data-run="{runs[first["id"]]}"' not in table
    assert 'data-run="' not in (await api.client.get("/ui/runs/table?status=failed")).text


async def test_the_cost_chart_is_drawn_by_the_group_asked_for(api: Api) -> None:
    agent = await api.create_agent(model="test/echo")
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})).json()
    await api.wait_run(run["id"])
    keys = await api.tenant()
    await _sign_in(api.client, keys.viewer)
    by_agent = await api.client.get("/ui/costs?by=agent")
    assert by_agent.status_code == 200 and f'"{agent["name"]}": [' in by_agent.text  # the chart's line
    by_model = await api.client.get("/ui/costs")
    assert '"test/echo": [' in by_model.text
    wrong = await api.client.get("/ui/costs?by=colour")
    assert wrong.status_code == 422 and "cannot chart by &#39;colour&#39;" in wrong.text
