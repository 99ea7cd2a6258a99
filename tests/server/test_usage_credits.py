"""``/v1/usage`` and ``/v1/credits``: an agent run's calls reach the usage totals; credits are granted
only with the ``credits:admin`` scope, drawn on by runs, and a tenant without any gets a 402 - on SQLite
and PostgreSQL. ``agentadapter credits add|show`` from the command line."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agentadapter.llm.ledger import UsageEntry
from agentadapter.llm.messages import Usage
from agentadapter.store.database import Database
from agentadapter.store.usage import usage_totals
from agentadapter.testing import offline_llm
from fakes.priced import PRICE_PER_TOKEN, PRICED_MODEL, priced_backend
from server.conftest import Api, AppFactory

CALL = 1000 * PRICE_PER_TOKEN  # $0.125: one call of a priced agent (max_tokens 1000)
TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture(params=["sqlite", "postgres"])
async def priced_api(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Api]:
    """The API, on both databases, with the priced model next to the test models."""
    async with make_api(database=request.param, llm=offline_llm(backends={"priced": priced_backend()})) as ready:
        yield ready


async def priced_agent(api: Api, tenant: str = "a", **fields: Any) -> dict[str, Any]:
    return await api.create_agent(tenant=tenant, model=PRICED_MODEL, model_settings={"max_tokens": 1000}, **fields)


async def run(api: Api, agent: dict[str, Any], tenant: str = "a", **body: Any) -> dict[str, Any]:
    response = await api.request("POST", "/v1/runs", tenant=tenant,
                                 json={"agent_id": agent["id"], "input": "How much?", **body})
    assert response.status_code == 202, response.text
    return await api.wait_run(response.json()["id"], tenant=tenant)


async def usage(api: Api, tenant: str = "a", as_: str = "viewer", **params: str) -> dict[str, Any]:
    response = await api.request("GET", "/v1/usage", tenant=tenant, as_=as_, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_usage_of_agent_runs_by_day_model_agent_and_project(priced_api: Api) -> None:
    api = priced_api
    priced = await priced_agent(api)
    echo = await api.create_agent()
    runs = [await run(api, priced), await run(api, priced), await run(api, echo)]
    assert [r["status"] for r in runs] == ["completed"] * 3
    project = runs[0]["project_id"]

    by_all = await usage(api, group_by="day,model,agent,project")
    rows = {(r["day"], r["model"], r["agent"], r["project"]): r for r in by_all["data"]}
    # ``model`` is the name the provider answered with; ``provider`` is the backend.
    assert set(rows) == {(TODAY.isoformat(), "model", priced["name"], project),
                         (TODAY.isoformat(), "echo", echo["name"], project)}
    paid = rows[(TODAY.isoformat(), "model", priced["name"], project)]
    assert (paid["requests"], paid["output_tokens"], paid["cost_usd"]) == (2, 2000, 2 * CALL)
    assert paid["total_tokens"] == paid["input_tokens"] + 2000 and paid["unpriced_requests"] == 0
    assert by_all["total"]["requests"] == 3 and by_all["total"]["cost_usd"] == 2 * CALL
    assert "day" not in by_all["total"]

    by_day = await usage(api)  # group_by=day by default
    assert [(r["day"], r["requests"]) for r in by_day["data"]] == [(TODAY.isoformat(), 3)]
    by_source = await usage(api, group_by="source,provider", model="model")
    assert [(r["source"], r["provider"], r["requests"]) for r in by_source["data"]] == [("run", "priced", 2)]
    by_agent = await usage(api, group_by="agent", agent=echo["name"])
    assert [(r["agent"], r["cost_usd"]) for r in by_agent["data"]] == [(echo["name"], 0.0)]
    hourly = await usage(api, group_by="hour", since=TODAY.isoformat())
    assert sum(r["requests"] for r in hourly["data"]) == 3 and hourly["data"][0]["hour"].endswith(":00Z")

    tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    assert (await usage(api, since=tomorrow))["data"] == []
    assert (await usage(api, until=yesterday))["data"] == []
    assert (await usage(api, until=TODAY.isoformat()))["total"]["requests"] == 3  # a date: the whole day
    assert (await usage(api, since=f"{yesterday}T12:00:00Z", until=f"{tomorrow}T00:00:00+00:00"))[
        "total"]["requests"] == 3
    assert (await usage(api, group_by="", project="elsewhere"))["data"] == []

    other = await usage(api, tenant="b", group_by="agent")
    assert other["data"] == [] and other["total"]["requests"] == 0


async def test_usage_parameters_are_checked(api: Api) -> None:
    for params, param in [({"group_by": "day,tenant"}, "group_by"), ({"group_by": "day,day"}, "group_by"),
                          ({"since": "yesterday"}, "since"), ({"until": "2026-13-01"}, "until"),
                          ({"since": "2026-11-21", "until": "2026-11-20"}, "until")]:
        response = await api.request("GET", "/v1/usage", params=params)
        assert response.status_code == 422, params
        error = response.json()["error"]
        assert error["param"] == param and error["message"].startswith(f"{param}: "), error
    scoped = await api.key(role="viewer", scopes=("runs:read",))
    refused = await api.client.get("/v1/usage", headers={"Authorization": f"Bearer {scoped}"})
    assert refused.status_code == 403


async def test_credits_are_granted_with_the_scope_drawn_on_by_runs_and_exhausted_with_a_402(priced_api: Api) -> None:
    api = priced_api
    agent = await priced_agent(api)
    assert (await run(api, agent))["status"] == "completed"  # no account yet: not metered
    unmetered = (await api.request("GET", "/v1/credits", as_="viewer")).json()
    assert (unmetered["metered"], unmetered["balance_usd"], unmetered["transactions"]) == (False, 0.0, [])

    grant = {"amount_usd": CALL, "description": "invoice 42"}
    for as_ in ("admin", "member"):  # a tenant's own admin cannot fund itself
        refused = await api.request("POST", "/v1/credits/grants", as_=as_, json=grant)
        assert refused.status_code == 403 and "credits:admin" in refused.json()["error"]["message"]
    wildcard = await api.key(role="admin", scopes=("*",))
    assert (await api.client.post("/v1/credits/grants", json=grant,
                                  headers={"Authorization": f"Bearer {wildcard}"})).status_code == 403
    operator = {"Authorization": f"Bearer {await api.key(role='admin', scopes=('credits:admin',))}"}
    bad = await api.client.post("/v1/credits/grants", json={"amount_usd": -5}, headers=operator)
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "amount_usd"
    granted = await api.client.post("/v1/credits/grants", json=grant, headers=operator)
    assert granted.status_code == 201, granted.text
    assert (granted.json()["balance_usd"], granted.json()["transaction"]["kind"]) == (CALL, "grant")

    paid = await run(api, agent)  # the balance covers exactly one call
    assert (paid["status"], paid["cost_usd"]) == ("completed", CALL)
    account = (await api.request("GET", "/v1/credits", as_="viewer")).json()
    assert (account["metered"], account["balance_usd"], account["reserved_usd"], account["available_usd"]) == (
        True, 0.0, 0.0, 0.0)
    assert [(t["kind"], t["amount_usd"]) for t in account["transactions"]] == [("charge", -CALL), ("grant", CALL)]
    assert account["transactions"][1]["description"] == "invoice 42"
    readable = (await api.client.get("/v1/credits/transactions", params={"kind": "charge"}, headers=operator)).json()
    assert [t["amount_usd"] for t in readable["data"]] == [-CALL]

    exhausted = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "again"})
    assert exhausted.status_code == 402, exhausted.text
    error = exhausted.json()["error"]
    assert (error["type"], error["code"]) == ("billing_error", "insufficient_credits")
    assert "agentadapter credits add" in error["message"]
    listed = (await api.request("GET", "/v1/runs")).json()["data"]
    assert len(listed) == 2  # the refused run was not stored

    # Some credit left, but less than a call may cost: the run starts and its call is refused.
    assert (await api.client.post("/v1/credits/grants", json={"amount_usd": CALL / 2},
                                  headers=operator)).status_code == 201
    short = await run(api, agent)
    step = short["agents"][0]
    assert (short["status"], step["error"]["type"]) == ("failed", "InsufficientCreditsError"), short
    assert "this call may cost up to $0.125000" in short["error"]["message"]

    audit = (await api.request("GET", "/v1/audit-logs", params={"action": "credits.grant"})).json()["data"]
    assert len(audit) == 2 and audit[0]["details"]["amount_usd"] == CALL / 2


async def test_a_server_that_requires_credits_refuses_tenants_without_them(make_api: AppFactory) -> None:
    async with make_api(server={"credits_required": True}) as api:
        agent = await api.create_agent()
        refused = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})
        assert refused.status_code == 402
        assert "AGENTADAPTER_CREDITS_REQUIRED" in refused.json()["error"]["message"]
        operator = {"Authorization": f"Bearer {await api.key(role='admin', scopes=('credits:admin',))}"}
        assert (await api.client.post("/v1/credits/grants", json={"amount_usd": 1.0},
                                      headers=operator)).status_code == 201
        assert (await run(api, agent))["status"] == "completed"  # test/echo is free: charged $0
        account = (await api.request("GET", "/v1/credits")).json()
        assert account["balance_usd"] == 1.0 and account["transactions"][0]["kind"] == "charge"


async def test_the_server_writes_pending_usage_before_it_stops(make_api: AppFactory) -> None:
    async with make_api() as api:
        tenant = await api.tenant()
        url = api.state.settings.database_url
        entry = UsageEntry(ts=time.time(), provider="p", model="m", usage=Usage(input_tokens=3, output_tokens=4),
                           cost_usd=0.5, tags={"tenant": str(tenant.id), "source": "gateway"})
        # Recorded from a thread without an event loop, just before the server stops: the record
        # writer's shutdown drains its queue into the database.
        await asyncio.to_thread(api.state.llm.ledger.record, entry)
    assert url is not None
    db = Database(url)
    try:
        async with db.session() as session:
            [totals] = await usage_totals(session, tenant.id)
    finally:
        await db.dispose()
    assert (totals.requests, totals.output_tokens, totals.cost_usd) == (1, 4, 0.5)


# ------------------------------------------------------------------------------------------------ CLI




def test_credits_are_added_and_shown_from_the_command_line(cli: tuple[CliRunner, typer.Typer]) -> None:
    runner, app = cli
    assert runner.invoke(app, ["tenants", "create", "acme"]).exit_code == 0
    empty = runner.invoke(app, ["credits", "show", "--tenant", "acme"])
    assert empty.exit_code == 0 and "not metered" in empty.stdout

    added = runner.invoke(app, ["credits", "add", "--tenant", "acme", "25", "--note", "invoice 7", "--json"])
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["balance_usd"] == 25.0
    assert runner.invoke(app, ["credits", "add", "-t", "acme", "--usd", "5"]).exit_code == 0

    shown = json.loads(runner.invoke(app, ["credits", "show", "--tenant", "acme", "--json"]).stdout)
    assert (shown["metered"], shown["balance_usd"], shown["available_usd"]) == (True, 30.0, 30.0)
    assert [(t["kind"], t["amount_usd"], t["actor"]) for t in shown["transactions"]] == [
        ("grant", 5.0, "cli"), ("grant", 25.0, "cli")]
    table = runner.invoke(app, ["credits", "show", "--tenant", "acme"])
    assert table.exit_code == 0 and "invoice 7" in table.stdout

    for args in (["25", "--usd", "5"], [], ["--usd=-3"]):
        refused = runner.invoke(app, ["credits", "add", "--tenant", "acme", *args])
        assert refused.exit_code == 2, (args, refused.output)
    assert runner.invoke(app, ["credits", "add", "--tenant", "nobody", "5"]).exit_code == 2
