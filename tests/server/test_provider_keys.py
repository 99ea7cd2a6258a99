"""``/v1/provider-keys``: tenants' own provider keys, write-only, encrypted at rest, used for their runs."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agentadapter.config import get_settings
from agentadapter.llm.client import LLM
from agentadapter.observability.logging import get_logger
from agentadapter.store import provider_keys
from agentadapter.store.database import Database
from agentadapter.store.secrets import SecretBox, generate_key
from fakes.openai_server import OpenAIFake
from server.conftest import Api, AppFactory

TENANT_KEY = "sk-tenant-a-0123456789abcdefWXYZ"
ROTATED_KEY = "sk-tenant-a-rotated-9876543210QRST"
SERVER_KEY = "sk-server-env-key-5555555555"


@pytest.fixture
async def openai_fake() -> AsyncIterator[OpenAIFake]:
    fake = OpenAIFake()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def wired(make_api: AppFactory, openai_fake: OpenAIFake) -> AsyncIterator[Api]:
    """The API with a server LLM whose environment has its own OpenAI key and the fake's URL."""
    llm = LLM(config={}, environ={"OPENAI_API_KEY": SERVER_KEY, "OPENAI_BASE_URL": f"{openai_fake.url}/v1"})
    async with make_api(llm=llm) as api:
        yield api


def _bearer(fake: OpenAIFake) -> str:
    headers = {k.lower(): v for k, v in fake.requests[-1].headers.items()}
    return headers["authorization"]


async def _run(api: Api, tenant: str, agent_id: str) -> dict[str, Any]:
    response = await api.request("POST", "/v1/runs", tenant=tenant, json={"agent_id": agent_id, "input": "Hi"})
    assert response.status_code in (201, 202), response.text
    run = await api.wait_run(response.json()["id"], tenant=tenant)
    assert run["status"] == "completed", run
    return run


async def test_a_tenants_runs_use_its_stored_key_and_others_the_servers(
    wired: Api, openai_fake: OpenAIFake, tmp_path: Path, logs: tuple[io.StringIO, pytest.LogCaptureFixture],
) -> None:
    api = wired
    agent_a = await api.create_agent("a", model="openai/gpt-4o-mini")
    agent_b = await api.create_agent("b", model="openai/gpt-4o-mini")
    await _run(api, "a", agent_a["id"])
    assert _bearer(openai_fake) == f"Bearer {SERVER_KEY}"  # no stored key yet: the server's environment

    created = await api.request("POST", "/v1/provider-keys", json={"provider": "openai", "key": TENANT_KEY})
    assert created.status_code == 201, created.text
    body = created.json()
    assert TENANT_KEY not in created.text and "key" not in body
    assert (body["provider"], body["name"], body["hint"], body["env_var"]) == (
        "openai", "default", "...WXYZ", "OPENAI_API_KEY")
    assert created.headers["Location"] == f"/v1/provider-keys/{body['id']}"

    await _run(api, "a", agent_a["id"])  # the cached facade was dropped: the stored key is used at once
    assert _bearer(openai_fake) == f"Bearer {TENANT_KEY}"
    await _run(api, "b", agent_b["id"])
    assert _bearer(openai_fake) == f"Bearer {SERVER_KEY}"

    listed = await api.request("GET", "/v1/provider-keys", as_="viewer")
    assert listed.status_code == 200 and [k["id"] for k in listed.json()["data"]] == [body["id"]]
    rotated = await api.request("POST", f"/v1/provider-keys/{body['id']}/rotate", json={"key": ROTATED_KEY})
    assert rotated.status_code == 200 and rotated.json()["hint"] == "...QRST" and rotated.json()["rotated_at"]
    await _run(api, "a", agent_a["id"])
    assert _bearer(openai_fake) == f"Bearer {ROTATED_KEY}"
    providers = (await api.request("GET", "/v1/providers/openai", as_="viewer")).json()
    assert providers["key_set"] is True and providers["key_env"] == "OPENAI_API_KEY"
    get_logger("agentadapter.test").info("a message quoting %s and %s", TENANT_KEY, ROTATED_KEY)

    # Nowhere in the database files (the WAL holds the newest pages) nor in the logs.
    files = [p for p in tmp_path.iterdir() if p.name.startswith("agentadapter.db")]
    assert any(p.name.endswith("-wal") for p in files)
    stored = b"".join(p.read_bytes() for p in files)
    assert b"gAAAAA" in stored  # the Fernet tokens are there
    for key in (TENANT_KEY, ROTATED_KEY):
        assert key.encode() not in stored
    stream, caplog = logs
    json_lines = stream.getvalue()
    assert json_lines and caplog.records
    assert all(json.loads(line) for line in json_lines.splitlines())
    for key in (TENANT_KEY, ROTATED_KEY):
        assert key not in json_lines and key not in caplog.text
    assert "[REDACTED]" in caplog.text

    deleted = await api.request("DELETE", f"/v1/provider-keys/{body['id']}")
    assert deleted.status_code == 204
    await _run(api, "a", agent_a["id"])
    assert _bearer(openai_fake) == f"Bearer {SERVER_KEY}"  # back to the server's key

    audit = (await api.request("GET", "/v1/audit-logs", params={"resource_type": "provider_key"})).json()["data"]
    assert sorted(e["action"] for e in audit) == ["provider_key.create", "provider_key.delete", "provider_key.rotate"]
    assert all(TENANT_KEY not in json.dumps(e) and ROTATED_KEY not in json.dumps(e) for e in audit)


async def test_only_admins_change_keys_and_other_tenants_see_none(any_api: Api) -> None:
    api = any_api
    body = {"provider": "anthropic", "name": "team", "key": "sk-ant-0123456789abcd"}
    for role in ("viewer", "member"):
        refused = await api.request("POST", "/v1/provider-keys", as_=role, json=body)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_permissions"
    created = (await api.request("POST", "/v1/provider-keys", json=body)).json()
    key_id = created["id"]
    member_rotate = await api.request("POST", f"/v1/provider-keys/{key_id}/rotate", as_="member",
                                      json={"key": "sk-ant-new-0123456789"})
    assert member_rotate.status_code == 403
    assert (await api.request("DELETE", f"/v1/provider-keys/{key_id}", as_="member")).status_code == 403
    assert (await api.request("GET", f"/v1/provider-keys/{key_id}", as_="member")).json()["hint"] == "...abcd"

    for method, path, extra in (("GET", "", {}), ("POST", "/rotate", {"json": {"key": "sk-ant-other-0123456"}}),
                                ("DELETE", "", {})):
        other = await api.request(method, f"/v1/provider-keys/{key_id}{path}", tenant="b", **extra)
        assert other.status_code == 404 and other.json()["error"]["code"] == "provider_key_not_found"
    assert (await api.request("GET", "/v1/provider-keys", tenant="b")).json()["data"] == []
    assert (await api.request("GET", "/v1/provider-keys")).json()["data"][0]["id"] == key_id

    duplicate = await api.request("POST", "/v1/provider-keys", json=body)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["param"] == "name"
    unknown = await api.request("POST", "/v1/provider-keys", json={"provider": "test", "key": "sk-0123456789"})
    error = unknown.json()["error"]
    assert unknown.status_code == 422 and error["param"] == "provider" and "openai" in error["details"]["providers"]
    short = await api.request("POST", "/v1/provider-keys", json={"provider": "openai", "key": "sk-12"})
    assert short.status_code == 422 and short.json()["error"]["param"] == "key" and "sk-12" not in short.text
    extra_field = await api.request("POST", "/v1/provider-keys", json={**body, "name": "x", "value": "y"})
    assert extra_field.status_code == 422


async def test_lists_are_paginated(api: Api) -> None:
    for name in ("one", "two", "three"):
        response = await api.request("POST", "/v1/provider-keys",
                                     json={"provider": "groq", "name": name, "key": f"gsk-{name}-0123456789"})
        assert response.status_code == 201
    first = (await api.request("GET", "/v1/provider-keys", params={"limit": 2})).json()
    assert [k["name"] for k in first["data"]] == ["three", "two"] and first["has_more"]
    rest = (await api.request("GET", "/v1/provider-keys", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [k["name"] for k in rest["data"]] == ["one"] and not rest["has_more"]


# --------------------------------------------------------------------------------------------- CLI




def _environ_with(secret: str) -> dict[str, str]:
    """The tenant's keys as the server would load them, with only ``secret`` to decrypt."""
    from services import _in_thread

    async def load() -> dict[str, str]:
        db = Database(f"sqlite:///{get_settings().sqlite_path}")
        try:
            async with db.session() as session:
                tenant_id = next(t for t in await _tenants(session) if t[1] == "acme")[0]
                return await provider_keys.tenant_environ(session, SecretBox.from_setting(secret), tenant_id)
        finally:
            await db.dispose()

    return _in_thread(load)


async def _tenants(session: Any) -> list[tuple[Any, str]]:
    from agentadapter.store import tenants

    return [(t.id, t.name) for t in await tenants.list_tenants(session)]


def test_cli_sets_lists_deletes_and_reencrypts(cli: tuple[CliRunner, typer.Typer],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    runner, app = cli
    old, new = generate_key(), generate_key()
    monkeypatch.setenv("AGENTADAPTER_SECRET_KEY", old)
    get_settings.cache_clear()
    assert runner.invoke(app, ["tenants", "create", "acme"]).exit_code == 0
    stored = runner.invoke(app, ["provider-keys", "set", "-t", "acme", "-p", "openai"], input=TENANT_KEY + "\n")
    assert stored.exit_code == 0, stored.output
    assert "...WXYZ" in stored.stdout and "OPENAI_API_KEY" in stored.stdout and TENANT_KEY not in stored.output
    replaced = runner.invoke(app, ["provider-keys", "set", "-t", "acme", "-p", "openai"], input=ROTATED_KEY + "\n")
    assert replaced.exit_code == 0 and "replaced" in replaced.stdout
    assert runner.invoke(app, ["provider-keys", "set", "-t", "acme", "-p", "claude", "-n", "batch"],
                         input="sk-ant-cli-key-0123456789\n").exit_code == 0
    in_argv = runner.invoke(app, ["provider-keys", "set", "-t", "acme", "-p", "openai", "--key", TENANT_KEY])
    assert in_argv.exit_code == 2  # there is no way to pass the key on the command line
    bad = runner.invoke(app, ["provider-keys", "set", "-t", "acme", "-p", "nope"], input=TENANT_KEY + "\n")
    assert bad.exit_code == 2 and "anthropic" in bad.output

    listed = runner.invoke(app, ["provider-keys", "list", "-t", "acme", "--json"])
    rows = json.loads(listed.stdout)
    assert {(r["provider"], r["name"], r["hint"]) for r in rows} == {
        ("openai", "default", "...QRST"), ("anthropic", "batch", "...6789")}
    assert ROTATED_KEY not in listed.stdout
    assert runner.invoke(app, ["provider-keys", "list", "-t", "acme"]).exit_code == 0
    assert _environ_with(old) == {"OPENAI_API_KEY": ROTATED_KEY, "ANTHROPIC_API_KEY": "sk-ant-cli-key-0123456789"}

    generated = runner.invoke(app, ["secrets", "generate"])
    assert generated.exit_code == 0 and len(generated.stdout.strip()) == 44
    monkeypatch.setenv("AGENTADAPTER_SECRET_KEY", f"{new},{old}")
    get_settings.cache_clear()
    reencrypted = runner.invoke(app, ["secrets", "reencrypt"])
    assert reencrypted.exit_code == 0 and reencrypted.stdout.strip() == "2"
    assert _environ_with(new)["OPENAI_API_KEY"] == ROTATED_KEY  # the old key is no longer needed

    monkeypatch.setenv("AGENTADAPTER_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    lost = runner.invoke(app, ["secrets", "reencrypt"])
    assert lost.exit_code == 2 and "Put the old key back" in lost.output

    deleted = runner.invoke(app, ["provider-keys", "delete", "-t", "acme", "-p", "claude", "-n", "batch"])
    assert deleted.exit_code == 0 and "...6789" in deleted.stdout
    missing = runner.invoke(app, ["provider-keys", "delete", "-t", "acme", "-p", "claude", "-n", "batch"])
    assert missing.exit_code == 2 and "provider-keys list" in missing.output


async def test_a_key_no_secret_opens_refuses_the_run_with_the_fix(wired: Api, openai_fake: OpenAIFake) -> None:
    api = wired
    tenant = await api.tenant("a")
    async with api.state.db.writer() as session:  # stored under a secret key this server no longer has
        await provider_keys.create_provider_key(session, tenant.id, SecretBox([generate_key()]), provider="openai",
                                                key=TENANT_KEY)
    agent = await api.create_agent("a", model="openai/gpt-4o-mini")
    response = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Hi"})
    # The tenant's facade is built before the run is accepted, so the run is refused with the fix.
    assert response.status_code == 422 and "Put the old key back" in response.json()["error"]["message"]
    assert TENANT_KEY not in response.text
    assert not openai_fake.requests  # nothing was sent with another key
