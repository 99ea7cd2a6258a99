"""A run that needs a consent the user lacks is refused with a 403 naming it; a recorded consent, or the
operator's consent service (a callable or a webhook), lets it through."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentadapter.service.compliance import ConsentQuery, set_consent_hook
from agentadapter.store import api_keys, users
from server.conftest import Api


async def _user_key(api: Api, email: str = "ann@example.com") -> tuple[uuid.UUID, str]:
    """A user of tenant a, and a member API key that acts as them."""
    tenant = await api.tenant()
    async with api.state.db.writer() as session:
        user = await users.get_or_create_user(session, tenant.id, f"sub-{uuid.uuid4().hex[:8]}", email=email)
        _, key = await api_keys.create_api_key(session, tenant.id, role="member", user_id=user.id)
    return user.id, key


async def _start(api: Api, key: str, agent_id: str) -> Any:
    return await api.client.post(
        "/v1/runs", headers={"Authorization": f"Bearer {key}"}, json={"agent_id": agent_id, "input": "hello"}
    )


async def test_a_run_without_a_required_consent_is_a_403_naming_it(any_api: Api) -> None:
    user_id, key = await _user_key(any_api)
    agent = await any_api.create_agent()
    policy = await any_api.request(
        "PATCH", "/v1/compliance/policy", json={"required_consents": ["external_providers", "retention"]}
    )
    assert policy.status_code == 200, policy.text

    refused = await _start(any_api, key, agent["id"])
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "consent_required"
    assert "external_providers" in error["message"] and "retention" in error["message"]
    assert error["details"]["missing"] == ["external_providers", "retention"]

    # The user records one consent: the other is still missing, and named alone.
    recorded = await any_api.client.put(
        f"/v1/compliance/consents/{user_id}",
        headers={"Authorization": f"Bearer {key}"},
        json={"consents": {"external_providers": True}},
    )
    assert recorded.status_code == 200, recorded.text
    refused = await _start(any_api, key, agent["id"])
    assert refused.status_code == 403 and refused.json()["error"]["details"]["missing"] == ["retention"]

    await any_api.client.put(
        f"/v1/compliance/consents/{user_id}",
        headers={"Authorization": f"Bearer {key}"},
        json={"consents": {"retention": True}},
    )
    started = await _start(any_api, key, agent["id"])
    assert started.status_code == 202, started.text
    assert (await any_api.wait_run(started.json()["id"]))["status"] == "completed"

    # A consent withdrawn refuses the next run again.
    await any_api.client.put(
        f"/v1/compliance/consents/{user_id}",
        headers={"Authorization": f"Bearer {key}"},
        json={"consents": {"retention": False}},
    )
    assert (await _start(any_api, key, agent["id"])).status_code == 403
    # The tenant's own keys act as its default user, who stands for the tenant, not a person: not checked.
    started = await _start(any_api, await any_api.key("a"), agent["id"])
    assert started.status_code == 202, started.text


async def test_consents_are_a_users_own_or_an_admins(api: Api) -> None:
    user_id, _ = await _user_key(api)
    _, other_key = await _user_key(api, "bob@example.com")
    headers = {"Authorization": f"Bearer {other_key}"}
    assert (await api.client.get(f"/v1/compliance/consents/{user_id}", headers=headers)).status_code == 403
    assert (
        await api.client.put(
            f"/v1/compliance/consents/{user_id}", headers=headers, json={"consents": {"training": True}}
        )
    ).status_code == 403
    admin = await api.request("PUT", f"/v1/compliance/consents/{user_id}", json={"consents": {"training": False}})
    assert admin.status_code == 200 and admin.json()["consents"]["training"]["granted"] is False
    # Another tenant's admin does not see the user.
    assert (await api.request("GET", f"/v1/compliance/consents/{user_id}", tenant="b")).status_code == 404
    bad = await api.request("PUT", f"/v1/compliance/consents/{user_id}", json={"consents": {"No Way": True}})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "consents"


async def test_the_operators_consent_callable_answers_for_unrecorded_purposes(api: Api) -> None:
    user_id, key = await _user_key(api)
    agent = await api.create_agent()
    await api.request("PATCH", "/v1/compliance/policy", json={"required_consents": ["training"]})
    asked: list[ConsentQuery] = []

    async def service(query: ConsentQuery) -> dict[str, bool]:
        asked.append(query)
        return {"training": query.email == "ann@example.com"}

    set_consent_hook(service)
    started = await _start(api, key, agent["id"])
    assert started.status_code == 202, started.text
    assert asked and asked[0].user_id == user_id and asked[0].purposes == ("training",)
    # A recorded refusal wins over the service.
    await api.request("PUT", f"/v1/compliance/consents/{user_id}", json={"consents": {"training": False}})
    assert (await _start(api, key, agent["id"])).status_code == 403

    def broken(query: ConsentQuery) -> dict[str, bool]:
        raise ConnectionError("down")

    set_consent_hook(broken)
    await api.request("PUT", f"/v1/compliance/consents/{user_id}", json={"consents": {}})
    _, fresh_key = await _user_key(api, "cy@example.com")
    failed = await _start(api, fresh_key, agent["id"])
    assert failed.status_code == 503 and failed.json()["error"]["code"] == "consent_service_unavailable"


@pytest.fixture
def consent_webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A consent service on loopback: grants every purpose to addresses at example.com."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            granted = str(body.get("email") or "").endswith("@example.com")
            answer = json.dumps({"consents": dict.fromkeys(body["purposes"], granted)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/consents", received
    server.shutdown()
    server.server_close()
    thread.join()


async def test_the_consent_webhook(
    api: Api, consent_webhook: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = consent_webhook
    monkeypatch.setenv("AGENTADAPTER_CONSENT_WEBHOOK_URL", url)
    set_consent_hook(None)  # read the environment again
    agent = await api.create_agent()
    await api.request("PATCH", "/v1/compliance/policy", json={"required_consents": ["external_providers"]})
    _, granted_key = await _user_key(api, "dee@example.com")
    _, refused_key = await _user_key(api, "eve@elsewhere.org")
    assert (await _start(api, granted_key, agent["id"])).status_code == 202
    refused = await _start(api, refused_key, agent["id"])
    assert refused.status_code == 403 and "external_providers" in refused.json()["error"]["message"]
    assert [r["purposes"] for r in received] == [["external_providers"], ["external_providers"]]
