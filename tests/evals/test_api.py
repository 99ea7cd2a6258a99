"""``/v1/datasets`` and ``/v1/experiments`` on the real app and database: datasets in every format and their
versions, an A/B experiment of two stored agents (one on a backend scripted to know the answers) run through
the executor as a run, persisted, compared with an interval, exported, tenant-isolated and audited; the cost
cap; cancelling; and continuous evaluation (a new version of a watched agent re-runs the experiment and a
worse one is marked as a regression)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from agentadapter.llm.messages import Request
from agentadapter.service.evals import check_watched
from agentadapter.testing import FunctionBackend, offline_llm
from fakes.priced import PRICED_MODEL, priced_backend
from server.conftest import Api, AppFactory, make_api, template_dir  # noqa: F401  (fixtures)

ANSWERS = {"France": "Paris", "Italy": "Rome", "Japan": "Tokyo", "Egypt": "Cairo", "Peru": "Lima",
           "Kenya": "Nairobi"}
CASES = [{"id": country.lower(), "input": f"What is the capital of {country}?", "expected": city}
         for country, city in ANSWERS.items()]


def knows(request: Request) -> str:
    text = request.messages[-1].text
    return next((f"It is {city}." for country, city in ANSWERS.items() if country in text), "No idea.")


@pytest.fixture(params=["sqlite", "postgres"])
async def eval_api(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Api]:  # noqa: F811
    llm = offline_llm(backends={"knows": FunctionBackend(knows, name="knows"), "priced": priced_backend()})
    async with make_api(database=request.param, llm=llm) as ready:
        yield ready


async def dataset(api: Api, tenant: str = "a", **body: Any) -> dict[str, Any]:
    payload = {"name": f"capitals-{len(api.tenants)}", "cases": CASES, "evaluators": ["contains"], **body}
    response = await api.request("POST", "/v1/datasets", tenant=tenant, json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def wait_run(api: Api, run_id: str) -> None:
    """Wait for the run to end on the executor's own event (no polling)."""
    executor = api.state.executor
    assert executor.events(uuid.UUID(run_id)) is not None, "the run is not known to this executor"
    await executor.wait(uuid.UUID(run_id))  # type: ignore[attr-defined]


async def experiment(api: Api, tenant: str = "a", **body: Any) -> dict[str, Any]:
    """Start an experiment and wait for its run (the executor's own wait: no polling)."""
    response = await api.request("POST", "/v1/experiments", tenant=tenant, json=body)
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["status"] == "queued" and started["run_id"]
    await wait_run(api, started["run_id"])
    done = await api.request("GET", f"/v1/experiments/{started['id']}", tenant=tenant)
    run = (await api.request("GET", f"/v1/runs/{started['run_id']}", tenant=tenant)).json()
    assert run["status"] == done.json()["status"], (run["error"], run["agents"], done.json())
    return dict(done.json())


async def test_datasets_in_every_format_with_versions_by_content(eval_api: Api) -> None:
    api = eval_api
    created = await dataset(api)
    assert (created["object"], created["latest_version"]) == ("dataset", 1)
    versions = (await api.request("GET", f"/v1/datasets/{created['id']}/versions")).json()["data"]
    assert [(v["version"], v["case_count"]) for v in versions] == [(1, 6)] and versions[0]["cases"] is None
    again = await api.request("POST", f"/v1/datasets/{created['id']}/versions",
                              json={"cases": CASES, "evaluators": ["contains"]})
    assert again.status_code == 200 and again.json()["version"] == 1  # same content: same version
    more = await api.request("POST", f"/v1/datasets/{created['id']}/versions",
                             json={"content": "input,expected\nCapital of Chile?,Santiago\n", "format": "csv"})
    assert more.status_code == 201 and more.json()["version"] == 2
    assert more.json()["content_hash"] != versions[0]["content_hash"]
    second = (await api.request("GET", f"/v1/datasets/{created['id']}/versions/2")).json()
    assert second["cases"] == [{"id": "case-1", "input": "Capital of Chile?", "expected": "Santiago"}]
    assert (await api.request("GET", f"/v1/datasets/{created['id']}")).json()["latest_version"] == 2

    yaml_body = "evaluators: [exact]\ncases:\n  - {input: Hi, expected: Hi}\n"
    from_yaml = await dataset(api, name="from-yaml", cases=None, evaluators=[], content=yaml_body, format="yaml")
    jsonl = '{"input": "Hi", "expected": "Hi"}\n'
    from_jsonl = await dataset(api, name="from-jsonl", cases=None, evaluators=["exact"], content=jsonl, format="jsonl")
    hashes = [(await api.request("GET", f"/v1/datasets/{d['id']}/versions")).json()["data"][0]["content_hash"]
              for d in (from_yaml, from_jsonl)]
    assert hashes[0] == hashes[1]  # the same cases and evaluators, whatever the format
    listed = (await api.request("GET", "/v1/datasets", as_="viewer")).json()["data"]
    assert {d["name"] for d in listed} == {created["name"], "from-yaml", "from-jsonl"}

    # Another tenant sees none of it.
    assert (await api.request("GET", f"/v1/datasets/{created['id']}", tenant="b")).status_code == 404
    assert (await api.request("GET", "/v1/datasets", tenant="b")).json()["data"] == []
    assert (await api.request("POST", f"/v1/datasets/{created['id']}/versions", tenant="b",
                              json={"cases": CASES})).status_code == 404
    taken = await api.request("POST", "/v1/datasets", json={"name": created["name"], "cases": CASES})
    assert taken.status_code == 409
    audit = (await api.request("GET", "/v1/audit-logs", params={"resource_type": "dataset"})).json()["data"]
    assert {"dataset.create", "dataset.version"} <= {e["action"] for e in audit}


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"cases": []}, "cases", "needs cases"),
    ({"cases": [{"expected": 1}]}, "cases", "'input' is required"),
    ({"cases": CASES, "evaluators": [{"type": "python", "code": "import os"}]}, "evaluators", "unknown evaluator"),
    ({"cases": CASES, "evaluators": [{"type": "judge", "model": "local/mlx/x", "rubric": "r"}]}, "evaluators",
     "only the operator"),
    ({"cases": CASES, "evaluators": [{"type": "json_schema", "schema": {"$ref": "file:///etc/passwd"}}]},
     "evaluators", "$ref"),
    ({"cases": CASES, "evaluators": [{"type": "json_schema", "schema": {"type": "string", "pattern": "(a+)+$"}}]},
     "evaluators", "pattern"),
    ({"content": "a: &a [1,1]\nb: &b [*a,*a]\nc: &c [*b,*b]\nd: [*c,*c]\ncases: [{input: x}]", "format": "yaml"},
     "content", ""),
    ({"content": "not,a,dataset\n1,2,3\n", "format": "csv"}, "content", "'input' column"),
    ({"cases": CASES, "content": "x", "format": "csv"}, "content", "not both"),
    ({"cases": [{"input": [{"role": "wizard", "content": "hi"}]}]}, "cases", "not a list of messages"),
])
async def test_bad_datasets_are_422s_naming_the_field(eval_api: Api, body: dict[str, Any], param: str,
                                                      message: str) -> None:
    response = await eval_api.request("POST", "/v1/datasets", json={"name": "bad", **body})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == param and message in error["message"], error


async def test_an_ab_experiment_of_two_stored_agents_runs_as_a_run_and_names_the_winner(eval_api: Api) -> None:
    api = eval_api
    data = await dataset(api)
    echo = await api.create_agent(name="echo-agent", model="test/echo")
    expert = await api.create_agent(name="expert-agent", model="knows/m")
    done = await experiment(api, dataset_id=data["id"], repeat=2,
                            subjects=[{"agent_id": echo["id"]}, {"agent_id": expert["id"]}])
    assert (done["status"], done["completed"], done["planned"], done["error"]) == ("completed", 24, 24, None)
    summary = {s["subject"]: s for s in done["summary"]}
    assert summary["expert-agent"]["score"] == 1.0 and summary["echo-agent"]["score"] == 0.0
    comparison = done["comparison"]
    assert comparison["winner"] == "expert-agent" and "expert-agent is better than echo-agent" in comparison["verdict"]
    score = next(m for m in comparison["metrics"] if m["metric"] == "score")
    assert (score["n"], score["wins"], score["ci_low"], score["ci_high"]) == (6, 6, 1.0, 1.0)
    assert [s["version"] for s in done["subjects"]] == [1, 1] and done["trigger"] == "api"

    run = (await api.request("GET", f"/v1/runs/{done['run_id']}")).json()
    assert run["status"] == "completed" and run["workflow_name"].startswith("experiment:")
    assert run["usage"]["total_tokens"] > 0  # the subjects' calls are the run's
    results = (await api.request("GET", f"/v1/experiments/{done['id']}/results",
                                 params={"subject": "expert-agent", "limit": 5})).json()
    assert len(results["data"]) == 5 and results["has_more"]
    assert all(r["scores"]["contains"]["value"] == 1.0 for r in results["data"])
    full = (await api.request("GET", f"/v1/experiments/{done['id']}", params={"results": "true"})).json()
    assert len(full["results"]) == 24

    swapped = (await api.request("GET", f"/v1/experiments/{done['id']}/comparison",
                                 params={"a": "expert-agent", "b": "echo-agent"})).json()
    assert swapped["winner"] == "expert-agent" and swapped["metrics"][0]["difference"] == -1.0
    unknown = await api.request("GET", f"/v1/experiments/{done['id']}/comparison", params={"a": "nobody"})
    assert unknown.status_code == 422 and unknown.json()["error"]["param"] == "a"

    exported = await api.request("GET", f"/v1/experiments/{done['id']}/export", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 24 and [r["case_id"] for r in rows[:4]] == ["france", "france", "france", "france"]
    as_json = json.loads((await api.request("GET", f"/v1/experiments/{done['id']}/export")).text)
    assert as_json["summary"][1]["subject"] == "expert-agent" and len(as_json["results"]) == 24

    # Tenant isolation: another tenant cannot read it, list it, or run the first tenant's agents or datasets.
    for path in (f"/v1/experiments/{done['id']}", f"/v1/experiments/{done['id']}/results",
                 f"/v1/experiments/{done['id']}/comparison", f"/v1/experiments/{done['id']}/export"):
        assert (await api.request("GET", path, tenant="b")).status_code == 404, path
    assert (await api.request("GET", "/v1/experiments", tenant="b")).json()["data"] == []
    theirs = await dataset(api, tenant="b")
    stolen = await api.request("POST", "/v1/experiments", tenant="b",
                               json={"dataset_id": theirs["id"], "subjects": [{"agent_id": expert["id"]}]})
    assert stolen.status_code == 404
    borrowed = await api.request("POST", "/v1/experiments", tenant="b",
                                 json={"dataset_id": data["id"], "subjects": [{"model": "test/echo"}]})
    assert borrowed.status_code == 404
    audit = (await api.request("GET", "/v1/audit-logs", params={"action": "experiment.create"})).json()["data"]
    assert [e["resource_id"] for e in audit] == [done["id"]]


async def test_model_subjects_the_cost_cap_and_refusals(eval_api: Api) -> None:
    api = eval_api
    data = await dataset(api)
    capped = await experiment(api, dataset_id=data["id"], concurrency=1, max_cost_usd=0.2,
                              subjects=[{"model": PRICED_MODEL, "name": "paid"}])
    # Each answer costs $0.125 (1,000 output tokens): the second crosses the cap and nothing starts after it.
    assert (capped["status"], capped["stopped"], capped["completed"]) == ("completed", "max_cost_usd", 2)
    assert capped["cost_usd"] == 0.25
    run = (await api.request("GET", f"/v1/runs/{capped['run_id']}")).json()
    assert run["cost_usd"] == 0.25
    by_source = (await api.request("GET", "/v1/usage", params={"group_by": "source,model"})).json()["data"]
    assert {(r["source"], r["model"], r["requests"]) for r in by_source} >= {("run", "model", 2)}

    for body, param in [
        ({"subjects": [{"model": "local/mlx/some-model"}]}, "subjects[0].model"),
        ({"subjects": [{"model": "test/echo", "agent_id": data["id"]}]}, "subjects[0]"),
        ({"subjects": [{"model": "test/echo"}, {"model": "test/echo"}]}, "subjects"),
        ({"subjects": [{"model": "test/echo"}], "watch": True}, "watch"),
        ({"subjects": [{"model": "test/echo"}], "evaluators": ["contains"]}, "evaluators"),
        ({"subjects": [{"model": "test/echo"}], "repeat": 11}, "repeat"),
        ({"subjects": [{"model": "test/echo"}], "dataset_version": 9}, None),
    ]:
        response = await api.request("POST", "/v1/experiments", json={"dataset_id": data["id"], **body})
        assert response.status_code in (404, 422), (body, response.text)
        if param is not None:
            assert response.status_code == 422 and response.json()["error"]["param"] == param, response.text
    assert len((await api.request("GET", "/v1/experiments")).json()["data"]) == 1


async def test_a_running_experiment_is_cancelled_through_its_run(make_api: AppFactory) -> None:  # noqa: F811
    import asyncio

    opened = asyncio.Event()
    started = asyncio.Event()

    async def slow(request: Request) -> str:
        started.set()
        await opened.wait()
        return "late"

    async with make_api(llm=offline_llm(backends={"gate": FunctionBackend(slow, name="gate")})) as api:
        data = await dataset(api)
        response = await api.request("POST", "/v1/experiments",
                                     json={"dataset_id": data["id"], "subjects": [{"model": "gate/m"}]})
        assert response.status_code == 202, response.text
        started_experiment = response.json()
        await started.wait()
        cancelled = await api.request("POST", f"/v1/experiments/{started_experiment['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        await wait_run(api, started_experiment["run_id"])
        after = (await api.request("GET", f"/v1/experiments/{started_experiment['id']}")).json()
        assert after["status"] == "cancelled" and after["error"]["type"] == "Cancelled"
        again = await api.request("POST", f"/v1/experiments/{started_experiment['id']}/cancel")
        assert again.status_code == 409
        opened.set()


def _regressions() -> float:
    return REGISTRY.get_sample_value("agentadapter_eval_regressions_total") or 0.0


async def test_a_new_version_of_a_watched_agent_reruns_and_a_worse_one_is_a_regression(eval_api: Api) -> None:
    api = eval_api
    data = await dataset(api)
    agent = await api.create_agent(name="watched", model="knows/m")
    attached = await experiment(api, dataset_id=data["id"], subjects=[{"agent_id": agent["id"]}], watch=True,
                                threshold=0.1)
    assert (attached["status"], attached["watch"], attached["watched_version"]) == ("completed", True, 1)
    assert await check_watched(api.state) == []  # nothing changed

    # A harmless new version (same model, other instructions): re-run, no regression.
    patched = await api.request("PATCH", f"/v1/agents/{agent['id']}", json={"instructions": "Be terse."})
    assert patched.json()["version"] == 2
    (first_id,) = await check_watched(api.state)
    first = str(first_id)
    child = (await api.request("GET", f"/v1/experiments/{first}")).json()
    await wait_run(api, child["run_id"])
    child = (await api.request("GET", f"/v1/experiments/{first}")).json()
    assert (child["status"], child["trigger"], child["parent_id"], child["watched_version"]) == (
        "completed", "new_version", attached["id"], 2)
    assert child["regression"] is None and child["subjects"][0]["version"] == 2

    # A worse version: the model that only echoes. The re-run regresses, and says so everywhere.
    before = _regressions()
    await api.request("PATCH", f"/v1/agents/{agent['id']}", json={"model": "test/echo"})
    (second_id,) = await check_watched(api.state)
    second = str(second_id)
    rerun = (await api.request("GET", f"/v1/experiments/{second}")).json()
    await wait_run(api, rerun["run_id"])
    rerun = (await api.request("GET", f"/v1/experiments/{second}")).json()
    regression = rerun["regression"]
    assert regression["subject"] == "watched" and regression["version"] == 3 and regression["previous_version"] == 2
    assert (regression["previous"], regression["current"], regression["drop"]) == (1.0, 0.0, 1.0)
    assert _regressions() == before + 1
    flagged = (await api.request("GET", "/v1/experiments", params={"regressed": "true"})).json()["data"]
    assert [e["id"] for e in flagged] == [second]
    reruns = (await api.request("GET", "/v1/experiments", params={"parent_id": attached["id"]})).json()["data"]
    assert {e["id"] for e in reruns} == {first, second}
    audit = (await api.request("GET", "/v1/audit-logs", params={"action": "experiment.regression"})).json()["data"]
    assert [e["resource_id"] for e in audit] == [second] and audit[0]["details"]["version"] == 3
    assert await check_watched(api.state) == []  # version 3 has been evaluated
    assert (await api.request("GET", "/v1/experiments", tenant="b", params={"regressed": "true"})).json()["data"] == []


async def test_the_servers_loop_starts_due_reruns_and_survives_a_failed_check(eval_api: Api, caplog) -> None:
    from agentadapter.server.evals_loop import ContinuousEvaluation

    api = eval_api
    data = await dataset(api)
    agent = await api.create_agent(name="looped", model="knows/m")
    attached = await experiment(api, dataset_id=data["id"], subjects=[{"agent_id": agent["id"]}], watch=True)
    loop = ContinuousEvaluation(api.state, interval_s=3600)
    assert await loop.run_once() == []
    await api.request("PATCH", f"/v1/agents/{agent['id']}", json={"instructions": "Shorter."})
    (started,) = await loop.run_once()
    child = (await api.request("GET", f"/v1/experiments/{started}")).json()
    assert (child["parent_id"], child["trigger"]) == (attached["id"], "new_version")
    await wait_run(api, child["run_id"])

    class Broken:
        """Parts whose database is gone: the check fails, the loop logs it and goes on."""

        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("database gone")

    broken = ContinuousEvaluation(Broken(), interval_s=3600)  # type: ignore[arg-type]
    assert await broken.run_once() == []
    assert "continuous-evaluation check failed" in caplog.text


async def test_experiments_need_the_inline_executor(eval_api: Api) -> None:
    api = eval_api
    data = await dataset(api)
    api.state.executor.name = "celery"  # what a server executing runs on Celery workers says
    try:
        response = await api.request("POST", "/v1/experiments",
                                     json={"dataset_id": data["id"], "subjects": [{"model": "test/echo"}]})
    finally:
        api.state.executor.name = "inline"
    assert response.status_code == 503 and response.json()["error"]["code"] == "experiments_need_inline_executor"
    assert (await api.request("GET", "/v1/experiments")).json()["data"] == []


async def test_a_scheduled_rerun_starts_once_its_interval_has_passed(eval_api: Api) -> None:
    import datetime as dt

    from agentadapter.store import evals as eval_store

    api = eval_api
    data = await dataset(api)
    agent = await api.create_agent(name="scheduled", model="knows/m")
    attached = await experiment(api, dataset_id=data["id"], subjects=[{"agent_id": agent["id"]}], watch=True,
                                schedule_s=3600)
    assert attached["schedule_s"] == 3600 and await check_watched(api.state) == []  # not due yet
    tenant = await api.tenant()
    async with api.state.db.writer() as session:  # an hour and a minute later, as far as the schedule knows
        row = await eval_store.get_experiment(session, tenant.id, uuid.UUID(attached["id"]))
        row.last_started_at = row.last_started_at - dt.timedelta(seconds=3660)
    (started,) = await check_watched(api.state)
    child = (await api.request("GET", f"/v1/experiments/{started}")).json()
    assert (child["trigger"], child["parent_id"], child["watched_version"]) == ("schedule", attached["id"], 1)
    await wait_run(api, child["run_id"])
    assert await check_watched(api.state) == []  # its start counts as the schedule's last


async def test_an_experiment_whose_run_ended_without_it_is_ended_as_failed(eval_api: Api) -> None:
    from agentadapter.store import evals as eval_store

    api = eval_api
    data = await dataset(api)
    done = await experiment(api, dataset_id=data["id"], subjects=[{"model": "test/echo"}])
    tenant = await api.tenant()
    async with api.state.db.writer() as session:  # as a process killed mid-experiment leaves it
        row = await eval_store.get_experiment(session, tenant.id, uuid.UUID(done["id"]))
        row.status = "running"
    assert await check_watched(api.state) == []
    after = (await api.request("GET", f"/v1/experiments/{done['id']}")).json()
    assert after["status"] == "failed" and after["error"]["type"] == "ServerLost"
