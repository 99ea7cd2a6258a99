"""A paused run on the dashboard, over the app's ASGI interface (no browser): its pending tool calls are shown,
the approvals form decides them through the same service as ``POST /v1/runs/{id}/approvals`` and the run
resumes; the form needs the session's CSRF token, a same-origin post and the runs write permission; another
tenant's run is the 404 page; a paused run can be cancelled.

The operator names the tool in ``approval_tools`` (``AGENTADAPTER_APPROVAL_TOOLS``), as a deployment does.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentadapter.agents.tools.registry import BUILTIN_TOOLS, ToolRegistry
from server.conftest import Api, AppFactory

SAME_SITE = {"origin": "http://testserver"}
refunds: list[int] = []
closed: list[str] = []


def _registry() -> ToolRegistry:
    # A registry of the test's own: the process-wide one is shared by every test in this worker.
    tools = ToolRegistry(lazy=dict(BUILTIN_TOOLS))

    @tools.tool
    def refund(amount: int) -> str:
        """Refund money to the customer."""
        refunds.append(amount)
        return f"refunded {amount}"

    @tools.tool
    def close_account(customer: str) -> str:
        """Close the customer's account."""
        closed.append(customer)
        return f"closed {customer}"

    return tools


@pytest.fixture
async def approving_api(make_api: AppFactory) -> AsyncIterator[Api]:
    refunds.clear()
    closed.clear()
    async with make_api(tools=_registry(), server={"approval_tools": ["refund", "close_account"]}) as api:
        yield api


async def _paused_run(api: Api, tools: tuple[str, ...] = ("refund",)) -> dict[str, Any]:
    agent = await api.create_agent(model="test/tools", tools=list(tools))
    started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "refund my order"})
    assert started.status_code == 202, started.text
    async with asyncio.timeout(10):
        while True:
            run = (await api.request("GET", f"/v1/runs/{started.json()['id']}")).json()
            if run["status"] == "paused":
                return dict(run)
            assert run["status"] in ("queued", "running"), run
            await asyncio.sleep(0.02)


async def _sign_in(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post("/ui/login", data={"credential": key}, headers=SAME_SITE)
    assert response.status_code == 303, response.text


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, "the page has no form"
    return found.group(1)


async def test_the_run_page_lists_the_pending_call_and_approving_it_completes_the_run(approving_api: Api) -> None:
    api = approving_api
    run = await _paused_run(api)
    [pending] = run["pending_approvals"]
    keys = await api.tenant()
    await _sign_in(api.client, keys.member)

    listing = (await api.client.get("/ui/runs?status=paused")).text
    assert f'data-run="{run["id"]}"' in listing and '<option value="paused" selected' in listing
    page = await api.client.get(f"/ui/runs/{run['id']}")
    assert page.status_code == 200
    html = page.text
    assert 'id="run-approvals"' in html and f'data-call="{pending["call_id"]}"' in html
    assert '<strong class="tool">refund</strong>' in html
    # The arguments, as indented JSON, escaped (Jinja turns the quotes into entities).
    assert f"{{\n  &#34;amount&#34;: {pending['arguments']['amount']}\n}}" in html
    assert 'id="approve-calls"' in html and 'id="reject-calls"' in html and 'id="cancel-run"' in html
    assert f'hx-get="/ui/runs/{run["id"]}/summary"' in html  # a paused run's summary keeps polling

    decided = await api.client.post(
        f"/ui/runs/{run['id']}/approvals",
        data={"csrf": _csrf(html), "decision": "approve", f"reason:{pending['call_id']}": "checked the order"},
        headers=SAME_SITE,
    )
    assert decided.status_code == 303 and decided.headers["location"] == f"/ui/runs/{run['id']}"
    done = await api.wait_run(run["id"])
    assert done["status"] == "completed" and refunds == [pending["arguments"]["amount"]]
    events = (await api.request("GET", f"/v1/runs/{run['id']}/events")).text
    assert "checked the order" in events  # the decision went through the service, reason and all
    after = (await api.client.get(f"/ui/runs/{run['id']}")).text
    assert 'id="run-approvals"' not in after and 'hx-get="' not in after.split('id="run-summary"')[1].split(">")[0]
    again = await api.client.post(
        f"/ui/runs/{run['id']}/approvals", data={"csrf": _csrf(after), "decision": "approve"}, headers=SAME_SITE
    )
    assert again.status_code == 409 and "not paused" in again.text


async def test_a_rejected_call_is_not_run_and_a_decision_must_be_given(approving_api: Api) -> None:
    api = approving_api
    run = await _paused_run(api)
    call_id = run["pending_approvals"][0]["call_id"]
    keys = await api.tenant()
    await _sign_in(api.client, keys.member)
    token = _csrf((await api.client.get(f"/ui/runs/{run['id']}")).text)
    path = f"/ui/runs/{run['id']}/approvals"

    for form, expected in (
        ({}, "Choose Approve or Reject"),
        ({"decision": "maybe"}, "Choose Approve or Reject"),
        ({"decision": "reject", f"reason:{call_id}": "x" * 2001}, "longer than 2000"),
    ):
        refused = await api.client.post(path, data={"csrf": token, **form}, headers=SAME_SITE)
        assert refused.status_code == 422 and expected in refused.text, refused.text
    assert (await api.request("GET", f"/v1/runs/{run['id']}")).json()["status"] == "paused"

    # A call's own choice wins over the button pressed.
    rejected = await api.client.post(
        path,
        data={"csrf": token, "decision": "approve", f"decision:{call_id}": "reject", f"reason:{call_id}": "no receipt"},
        headers=SAME_SITE,
    )
    assert rejected.status_code == 303
    done = await api.wait_run(run["id"])
    assert done["status"] == "completed" and refunds == []
    assert "no receipt" in (await api.request("GET", f"/v1/runs/{run['id']}/events")).text


async def test_a_decision_without_the_token_or_from_another_site_is_refused(approving_api: Api) -> None:
    api = approving_api
    run = await _paused_run(api)
    keys = await api.tenant()
    await _sign_in(api.client, keys.admin)
    token = _csrf((await api.client.get(f"/ui/runs/{run['id']}")).text)
    path = f"/ui/runs/{run['id']}/approvals"
    for data, headers in (
        ({"decision": "approve"}, SAME_SITE),
        ({"csrf": "forged", "decision": "approve"}, SAME_SITE),
        ({"csrf": token, "decision": "approve"}, {"origin": "http://elsewhere.test"}),
    ):
        refused = await api.client.post(path, data=data, headers=headers)
        assert refused.status_code == 403 and "did not come from this dashboard" in refused.text
    api.client.cookies.clear()
    anonymous = await api.client.post(path, data={"csrf": token, "decision": "approve"}, headers=SAME_SITE)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/ui/login"
    assert (await api.request("GET", f"/v1/runs/{run['id']}")).json()["status"] == "paused"
    assert refunds == []


async def test_a_viewer_sees_the_calls_but_cannot_decide(approving_api: Api) -> None:
    api = approving_api
    run = await _paused_run(api)
    keys = await api.tenant()
    await _sign_in(api.client, keys.viewer)
    html = (await api.client.get(f"/ui/runs/{run['id']}")).text
    assert 'id="run-approvals"' in html and '<strong class="tool">refund</strong>' in html
    assert 'id="approve-calls"' not in html and 'id="approvals-form"' not in html and 'id="cancel-run"' not in html
    assert 'id="approvals-read-only"' in html
    token = _csrf((await api.client.get("/ui/runs")).text)  # the sign-out form's token
    refused = await api.client.post(
        f"/ui/runs/{run['id']}/approvals", data={"csrf": token, "decision": "approve"}, headers=SAME_SITE
    )
    assert refused.status_code == 403 and "do not allow write access to runs" in refused.text
    assert (await api.request("GET", f"/v1/runs/{run['id']}")).json()["status"] == "paused" and refunds == []


async def test_another_tenants_paused_run_is_not_found(approving_api: Api) -> None:
    api = approving_api
    run = await _paused_run(api)
    other = await api.tenant("b")
    await _sign_in(api.client, other.admin)
    assert (await api.client.get(f"/ui/runs/{run['id']}")).status_code == 404
    token = _csrf((await api.client.get("/ui/runs")).text)
    for path in (f"/ui/runs/{run['id']}/approvals", "/ui/runs/not-a-uuid/approvals"):
        response = await api.client.post(path, data={"csrf": token, "decision": "approve"}, headers=SAME_SITE)
        assert response.status_code == 404 and 'id="error-status"' in response.text, path
    assert (await api.request("GET", f"/v1/runs/{run['id']}")).json()["status"] == "paused" and refunds == []


async def test_a_paused_run_is_cancelled_from_its_page(approving_api: Api) -> None:
    api = approving_api
    run = await _paused_run(api)
    keys = await api.tenant()
    await _sign_in(api.client, keys.member)
    token = _csrf((await api.client.get(f"/ui/runs/{run['id']}")).text)
    response = await api.client.post(f"/ui/runs/{run['id']}/cancel", data={"csrf": token}, headers=SAME_SITE)
    assert response.status_code == 303
    done = await api.wait_run(run["id"])
    assert done["status"] == "cancelled" and refunds == []
    assert 'id="run-approvals"' not in (await api.client.get(f"/ui/runs/{run['id']}")).text


async def test_several_pending_calls_are_decided_each_on_its_own(approving_api: Api) -> None:
    api = approving_api
    run = await _paused_run(api, ("refund", "close_account"))
    calls = {call["tool"]: call["call_id"] for call in run["pending_approvals"]}
    assert set(calls) == {"refund", "close_account"}
    keys = await api.tenant()
    await _sign_in(api.client, keys.member)
    html = (await api.client.get(f"/ui/runs/{run['id']}")).text
    for call_id in calls.values():  # a choice of its own for each call
        assert (
            f'name="decision:{call_id}" value="approve"' in html and f'name="decision:{call_id}" value="reject"' in html
        )
    # The refund is approved on its own; the button pressed (Reject) decides the other call.
    decided = await api.client.post(
        f"/ui/runs/{run['id']}/approvals",
        data={"csrf": _csrf(html), "decision": "reject", f"decision:{calls['refund']}": "approve"},
        headers=SAME_SITE,
    )
    assert decided.status_code == 303, decided.text
    done = await api.wait_run(run["id"])
    assert done["status"] == "completed" and len(refunds) == 1 and closed == []
