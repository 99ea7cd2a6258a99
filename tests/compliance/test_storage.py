"""A tenant's policy masks (or hashes) personal data in what a run stores: its input and output, its agent
steps, its messages and its events - for each detector - on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from agentadapter.store.models import AgentRun, Run, RunEventRow
from server.conftest import Api

PERSONAL = {
    "email": "jane.doe@example.com",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "ip": "192.168.1.20",
}
TASK = "Contact " + "; ".join(f"{kind} {value}" for kind, value in PERSONAL.items())


async def _stored(api: Api, run_id: str) -> str:
    """Everything the database holds of the run, as one text."""
    rid = uuid.UUID(run_id)
    async with api.state.db.session() as session:
        run = (
            await session.execute(sa.select(Run.input, Run.output, Run.text, Run.details).where(Run.id == rid))
        ).one()
        steps = (
            await session.execute(
                sa.select(AgentRun.input, AgentRun.output, AgentRun.text).where(AgentRun.run_id == rid)
            )
        ).all()
        events = (await session.execute(sa.select(RunEventRow.data).where(RunEventRow.run_id == rid))).all()
    assert steps and events
    return json.dumps([list(run), [list(s) for s in steps], [list(e) for e in events]], default=str)


async def _run(api: Api, task: str) -> dict[str, Any]:
    agent = await api.create_agent()
    started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": task})
    assert started.status_code == 202, started.text
    run = await api.wait_run(started.json()["id"])
    assert run["status"] == "completed", run
    return run


async def test_keep_stores_the_data_as_given(any_api: Api) -> None:
    run = await _run(any_api, TASK)
    stored = await _stored(any_api, run["id"])
    for value in PERSONAL.values():
        assert value in stored


@pytest.mark.parametrize("kind", sorted(PERSONAL))
async def test_mask_stores_no_personal_data_of_each_kind(any_api: Api, kind: str) -> None:
    policy = await any_api.request("PATCH", "/v1/compliance/policy", json={"pii_mode": "mask", "detectors": [kind]})
    assert policy.status_code == 200, policy.text
    assert policy.json()["pii_mode"] == "mask" and policy.json()["detectors"] == [kind]
    run = await _run(any_api, TASK)
    stored = await _stored(any_api, run["id"])
    assert PERSONAL[kind] not in stored
    assert f"[{kind.upper()}]" in stored
    for other, value in PERSONAL.items():  # only the policy's detectors apply
        if other != kind:
            assert value in stored, other
    # What the API answers is what is stored.
    assert PERSONAL[kind] not in json.dumps((await any_api.request("GET", f"/v1/runs/{run['id']}")).json())


async def test_hash_stores_a_keyed_token_the_same_in_every_record(any_api: Api) -> None:
    await any_api.request("PATCH", "/v1/compliance/policy", json={"pii_mode": "hash"})
    first = await _stored(any_api, (await _run(any_api, TASK))["id"])
    second = await _stored(any_api, (await _run(any_api, "again jane.doe@example.com"))["id"])
    for value in PERSONAL.values():
        assert value not in first
    token = re.search(r"\[EMAIL:[0-9a-f]{12}\]", first)
    assert token is not None
    assert token.group() in second


async def test_a_policy_is_the_tenants_own(any_api: Api) -> None:
    await any_api.request("PATCH", "/v1/compliance/policy", json={"pii_mode": "mask"})
    await any_api.tenant("b")
    agent = await any_api.create_agent(tenant="b")
    started = await any_api.request("POST", "/v1/runs", tenant="b", json={"agent_id": agent["id"], "input": TASK})
    run = await any_api.wait_run(started.json()["id"], tenant="b")
    assert PERSONAL["email"] in await _stored(any_api, run["id"])


async def test_bad_policy_values_are_422s_naming_the_field(api: Api) -> None:
    for body, param in (
        ({"pii_mode": "scramble"}, "pii_mode"),
        ({"detectors": ["names"]}, "detectors"),
        ({"phone_region": "Britain"}, "phone_region"),
        ({"retention_days": -1}, "retention_days"),
        ({"required_consents": ["Bad Purpose"]}, "required_consents"),
    ):
        response = await api.request("PATCH", "/v1/compliance/policy", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["param"] == param
    assert (
        await api.request("PATCH", "/v1/compliance/policy", as_="member", json={"pii_mode": "mask"})
    ).status_code == 403
