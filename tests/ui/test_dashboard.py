"""The dashboard in a real headless Chromium: sign in, a run watched live to completion, its cost on the
costs page, a backend's breaker opening, another tenant's run refused, the forms' CSRF protection, and a paused run's
tool call approved from its page.

Each test signs in as a tenant of its own on the module's server (``conftest.py``), so the tests do not
depend on each other's runs or spend. Screenshots of the main pages are saved in the test's folder
(``AGENTADAPTER_UI_SCREENSHOTS=DIR`` copies them there too: that is how docs/img/dashboard/ is made).
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from .conftest import HOLD, PRICED_MODEL, Dashboard, sign_in, unique


def _agent(dashboard: Dashboard, key: str, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("agent"), "model": PRICED_MODEL, "instructions": "Answer briefly.", **fields}
    with dashboard.api(key) as api:
        response = api.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_sign_in_refuses_a_wrong_key_then_keeps_the_key_out_of_the_page(page: Any, dashboard: Dashboard) -> None:
    key = dashboard.tenant_key("ui-signin")
    page.goto(f"{dashboard.url}/ui/runs")
    assert page.url == f"{dashboard.url}/ui/login"  # not signed in: the sign-in form
    dashboard.shot(page, "login")
    page.fill("#credential", "aa_not_a_key")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error")
    assert page.console_errors == ["Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
    page.console_errors.clear()

    sign_in(page, dashboard, key)
    assert page.locator("h1").first.inner_text() == "Runs"
    cookies = page.context.cookies()
    [session] = [c for c in cookies if c["name"] == "agentadapter_ui"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/ui"
    assert key not in session["value"] and key not in page.url and key not in page.content()
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the session

    page.click("text=Sign out")
    page.wait_for_url(f"{dashboard.url}/ui/login")
    page.goto(f"{dashboard.url}/ui/costs")
    assert page.url == f"{dashboard.url}/ui/login"
    assert page.console_errors == []


def test_a_run_progresses_live_to_completion_and_its_cost_shows(page: Any, dashboard: Dashboard) -> None:
    key = dashboard.tenant_key("ui-run")
    agent = _agent(dashboard, key)
    dashboard.gate.clear()
    sign_in(page, dashboard, key)

    page.goto(f"{dashboard.url}/ui/agents/{agent['id']}")
    page.fill("#run-input", f"What does it cost? {HOLD}")
    page.click("#run-agent")
    page.wait_for_url(f"{dashboard.url}/ui/runs/*")
    run_id = page.url.rsplit("/", 1)[1]

    # In progress: the model is held, the agent has started (streamed into the timeline), the status says so.
    page.wait_for_selector("#timeline li[data-type=agent_started]")
    expect(page.locator("#run-status")).to_have_text("running", timeout=20_000)
    assert page.locator("#timeline li[data-type=run_finished]").count() == 0
    assert page.locator("#cancel-run").is_visible()
    dashboard.shot(page, "run-live")

    # The list, in a second tab, shows it running; both pages follow it to its end without a reload.
    listing = page.context.new_page()
    listing.goto(f"{dashboard.url}/ui/runs")
    assert listing.locator(f"#runs-table tr[data-run='{run_id}']").get_attribute("data-status") == "running"
    dashboard.shot(listing, "runs")
    dashboard.gate.set()
    listing.wait_for_selector(f"#runs-table tr[data-run='{run_id}'][data-status=completed]")
    listing.close()

    page.wait_for_selector("#timeline li[data-type=run_finished]")
    expect(page.locator("#timeline li[data-type=token]")).to_contain_text("paid answer")  # the streamed deltas
    expect(page.locator("#timeline li[data-type=agent_finished]")).to_contain_text("1000 out tokens")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=20_000)
    assert page.locator("#run-cost").inner_text() == "$0.1250"  # 1000 output tokens at $125 per million
    assert "paid answer" in page.locator("#run-output").inner_text()
    assert page.locator("#run-agents tbody tr").count() == 1
    dashboard.shot(page, "run")

    page.goto(f"{dashboard.url}/ui/costs")
    by_model = page.locator("#cost-by-model tbody tr", has_text=PRICED_MODEL)
    assert by_model.count() == 1 and "$0.1250" in by_model.inner_text()
    assert page.locator("#total-cost").inner_text() == "$0.1250"
    assert page.locator("#cost-by-source tbody tr", has_text="run").count() == 1
    assert page.locator("#cost-by-project tbody tr").inner_text().startswith("default")  # by name, not id
    page.wait_for_selector("#cost-chart canvas")  # uPlot drew the spend per day
    dashboard.shot(page, "costs")
    assert page.console_errors == []


def test_a_backends_breaker_opens_after_injected_failures(page: Any, dashboard: Dashboard) -> None:
    key = dashboard.tenant_key("ui-breaker")
    with dashboard.api(key) as api:
        for _ in range(3):  # each call retries twice: five consecutive failures open the breaker
            response = api.post(
                "/v1/chat/completions", json={"model": "flaky/model-x", "messages": [{"role": "user", "content": "hi"}]}
            )
            assert response.status_code >= 500, response.text
    sign_in(page, dashboard, key)
    page.goto(f"{dashboard.url}/ui/backends")
    page.wait_for_selector("#health tr[data-target='flaky/model-x'][data-breaker=open]")
    row = page.locator("#health tr[data-target='flaky/model-x']")
    assert "100.0%" in row.inner_text()  # the error rate
    assert page.locator("#catalog tbody tr").count() > 10  # the model catalog with prices
    dashboard.shot(page, "backends", full_page=False)  # the catalog below is long
    assert page.console_errors == []


def test_another_tenants_run_is_not_found(page: Any, dashboard: Dashboard) -> None:
    owner, other = dashboard.tenant_key("ui-owner"), dashboard.tenant_key("ui-other")
    agent = _agent(dashboard, owner, model="test/echo")
    with dashboard.api(owner) as api:
        run = api.post("/v1/runs", json={"agent_id": agent["id"], "input": "mine"}).json()
    sign_in(page, dashboard, other)

    response = page.goto(f"{dashboard.url}/ui/runs/{run['id']}")
    assert response is not None and response.status == 404
    assert page.locator("#error-status").inner_text().startswith("404")
    assert page.goto(f"{dashboard.url}/ui/agents/{agent['id']}").status == 404
    assert page.request.get(f"{dashboard.url}/ui/runs/{run['id']}/events").status == 404
    page.goto(f"{dashboard.url}/ui/runs")
    assert page.locator(f"#runs-table tr[data-run='{run['id']}']").count() == 0
    dashboard.shot(page, "not-found")


def test_forms_need_the_sessions_csrf_token(page: Any, dashboard: Dashboard) -> None:
    key = dashboard.tenant_key("ui-csrf")
    agent = _agent(dashboard, key, model="test/echo")
    sign_in(page, dashboard, key)
    page.goto(f"{dashboard.url}/ui/agents/{agent['id']}")
    forged = page.request.post(
        f"{dashboard.url}/ui/agents/{agent['id']}/run",
        form={"input": "hi", "csrf": "x"},
        headers={"origin": dashboard.url},
    )
    assert forged.status == 403
    token = page.locator("form input[name=csrf]").first.get_attribute("value")
    cross_site = page.request.post(
        f"{dashboard.url}/ui/agents/{agent['id']}/run",
        form={"input": "hi", "csrf": token},
        headers={"origin": "http://elsewhere.test"},
    )
    assert cross_site.status == 403  # the right token, from another site's page
    with dashboard.api(key) as api:
        assert api.get("/v1/runs").json()["data"] == []  # nothing ran

    page.fill("#run-input", "hello")
    page.click("#run-agent")
    page.wait_for_url(f"{dashboard.url}/ui/runs/*")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=20_000)


def test_agent_versions_their_diff_and_the_other_pages(page: Any, dashboard: Dashboard) -> None:
    key = dashboard.tenant_key("ui-agents")
    agent = _agent(dashboard, key, model="test/echo")
    with dashboard.api(key) as api:
        updated = api.patch(f"/v1/agents/{agent['id']}", json={"instructions": "Answer in one word."})
        assert updated.status_code == 200, updated.text
    sign_in(page, dashboard, key)
    page.goto(f"{dashboard.url}/ui/agents")
    assert page.locator("#agents tbody tr", has_text=agent["name"]).count() == 1
    dashboard.shot(page, "agents")
    page.click(f"text={agent['name']}")
    page.wait_for_url(f"{dashboard.url}/ui/agents/{agent['id']}")
    diff = page.locator("details[open] pre.diff").inner_text()
    assert '+  "instructions": "Answer in one word."' in diff and '-  "instructions": "Answer briefly."' in diff
    dashboard.shot(page, "agent")
    page.goto(f"{dashboard.url}/ui/evaluations")
    assert page.locator("#experiments").is_visible() and page.locator("#archives").is_visible()
    assert page.console_errors == []


def test_a_run_is_cancelled_from_its_page(page: Any, dashboard: Dashboard) -> None:
    key = dashboard.tenant_key("ui-cancel")
    agent = _agent(dashboard, key)
    dashboard.gate.clear()
    try:
        sign_in(page, dashboard, key)
        page.goto(f"{dashboard.url}/ui/agents/{agent['id']}")
        page.fill("#run-input", f"never mind {HOLD}")
        page.click("#run-agent")
        page.wait_for_url(f"{dashboard.url}/ui/runs/*")
        page.wait_for_selector("#timeline li[data-type=agent_started]")
        page.click("#cancel-run")
        expect(page.locator("#run-status")).to_have_text("cancelled", timeout=20_000)
        page.wait_for_selector("#timeline li[data-type=run_finished]")
        assert page.locator("#cancel-run").count() == 0
    finally:
        dashboard.gate.set()


def test_a_workflow_runs_from_its_page(page: Any, dashboard: Dashboard) -> None:
    key = dashboard.tenant_key("ui-workflow")
    spec = {
        "strategy": "sequential",
        "agents": [
            {"name": "first", "model": "test/echo", "instructions": "Repeat."},
            {"name": "second", "model": "test/echo", "instructions": "Repeat again."},
        ],
    }
    with dashboard.api(key) as api:
        created = api.post("/v1/workflows", json={"name": unique("flow"), "spec": spec})
    assert created.status_code == 201, created.text
    workflow = created.json()
    sign_in(page, dashboard, key)
    page.goto(f"{dashboard.url}/ui/agents")
    page.click(f"text={workflow['name']}")
    page.wait_for_url(f"{dashboard.url}/ui/workflows/{workflow['id']}")
    page.fill("#run-input", "echo me")
    page.click("#run-workflow")
    page.wait_for_url(f"{dashboard.url}/ui/runs/*")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=20_000)
    page.wait_for_selector("#timeline li[data-type=run_finished]")
    assert page.locator("#timeline li[data-type=agent_finished]").count() == 2
    expect(page.locator("#run-agents tbody tr")).to_have_count(2)
    assert page.console_errors == []


def test_the_timeline_shows_tool_calls_their_results_and_failures(page: Any, dashboard: Dashboard) -> None:
    key = dashboard.tenant_key("ui-timeline")
    helper = _agent(dashboard, key, model="test/tools", tools=["tide_table"])
    broken = _agent(dashboard, key, model="flaky/model-y")
    sign_in(page, dashboard, key)

    page.goto(f"{dashboard.url}/ui/agents/{helper['id']}")
    page.fill("#run-input", "When is high tide?")
    page.click("#run-agent")
    page.wait_for_url(f"{dashboard.url}/ui/runs/*")
    page.wait_for_selector("#timeline li[data-type=run_finished]")
    expect(page.locator("#timeline li[data-type=tool_call]")).to_contain_text("tide_table")
    expect(page.locator("#timeline li[data-type=tool_result]")).to_contain_text("high tide at")
    expect(page.locator("#run-status")).to_have_text("completed")

    page.goto(f"{dashboard.url}/ui/agents/{broken['id']}")
    page.fill("#run-input", "anyone there?")
    page.click("#run-agent")
    page.wait_for_url(f"{dashboard.url}/ui/runs/*")
    page.wait_for_selector("#timeline li[data-type=run_finished]")
    expect(page.locator("#timeline li[data-type=agent_failed]")).to_contain_text("failed")
    expect(page.locator("#run-status")).to_have_text("failed", timeout=20_000)
    assert page.locator("#run-summary .error").is_visible()
    assert page.console_errors == []


def test_a_paused_runs_call_is_approved_from_its_page_and_the_run_completes(page: Any, dashboard: Dashboard) -> None:
    key = dashboard.tenant_key("ui-approve")
    agent = _agent(dashboard, key, model="test/tools", tools=["refund_order"])
    sign_in(page, dashboard, key)
    page.goto(f"{dashboard.url}/ui/agents/{agent['id']}")
    page.fill("#run-input", "Refund my order, please.")
    page.click("#run-agent")
    page.wait_for_url(f"{dashboard.url}/ui/runs/*")
    run_id = page.url.rsplit("/", 1)[1]

    # The run pauses on its own: the summary's poll brings the call waiting for a decision, without a reload.
    expect(page.locator("#run-status")).to_have_text("paused", timeout=20_000)
    call = page.locator("#run-approvals li.pending-call")
    expect(call).to_have_count(1)
    expect(call.locator(".tool")).to_have_text("refund_order")
    assert '"order":' in call.locator("pre.arguments").inner_text()  # the arguments, as indented JSON
    with dashboard.api(key) as api:
        [pending] = api.get(f"/v1/runs/{run_id}").json()["pending_approvals"]
    assert call.get_attribute("data-call") == pending["call_id"]
    expect(page.locator("#timeline li[data-type=run_paused]")).to_contain_text(
        f"waiting for approval: refund_order ({pending['call_id']})"
    )
    page.fill("#reason-1", "the parcel was lost")
    # What was typed survives the summary's next refresh (the form is preserved while the run stays paused).
    with page.expect_response(lambda response: response.url.endswith(f"/ui/runs/{run_id}/summary")):
        pass
    expect(page.locator("#reason-1")).to_have_value("the parcel was lost")
    dashboard.shot(page, "run-paused")

    page.click("#approve-calls")
    page.wait_for_url(f"{dashboard.url}/ui/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=20_000)
    page.wait_for_selector("#timeline li[data-type=run_finished]")
    expect(page.locator("#timeline li[data-type=run_resumed]")).to_contain_text(
        f"{pending['call_id']} approved (the parcel was lost)"
    )
    expect(page.locator("#timeline li[data-type=tool_result]")).to_contain_text("refunded")
    assert page.locator("#run-approvals").count() == 0 and page.locator("#cancel-run").count() == 0
    with dashboard.api(key) as api:
        assert api.get(f"/v1/runs/{run_id}").json()["status"] == "completed"
    assert page.console_errors == []
