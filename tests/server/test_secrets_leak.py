"""Nothing secret leaves in an error, and ``/metrics`` shows no tenant's names.

A loopback provider answers 401, 400 and 500 with bodies that quote the key it was sent (whole, cut
short, inside a URL, as a bearer header), as real providers and proxies do. Through the gateway,
a run (its stored error, its events, the database file) and the logs, nothing key-shaped remains,
while the ordinary part of each message does. ``/metrics`` bounds its label values (made-up model
names and paths are ``other`` / ``unmatched``) and asks for a token when one is set.
"""

from __future__ import annotations

import io
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentadapter.llm.client import LLM
from agentadapter.llm.policy.retry import RetryPolicy
from fakes.leaky_server import LeakyOpenAIFake
from server.conftest import Api, AppFactory

# Shaped like an OpenAI project key; made per run, so nothing else can contain it by chance.
SERVER_KEY = "sk-proj-" + secrets.token_urlsafe(48)
METRICS_TOKEN = "metrics-" + secrets.token_urlsafe(24)


def _fragments(key: str) -> list[str]:
    """The key, and the longest piece of it a leak could carry (the 400 quotes it cut short)."""
    return [key, key[:-6], key[8:-6]]


def assert_clean(text: str | bytes, where: str) -> None:
    data = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
    for fragment in _fragments(SERVER_KEY):
        assert fragment not in data, f"the key leaked in {where}: ...{data[max(0, data.find(fragment) - 80):][:200]}"


@pytest.fixture
async def leaky() -> AsyncIterator[LeakyOpenAIFake]:
    fake = LeakyOpenAIFake()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def wired(make_api: AppFactory, leaky: LeakyOpenAIFake) -> AsyncIterator[Api]:
    """The API with a server LLM holding the key in its environment, pointed at the leaky provider."""
    llm = LLM(config={}, environ={"OPENAI_API_KEY": SERVER_KEY, "OPENAI_BASE_URL": f"{leaky.url}/v1"},
              retry=RetryPolicy(max_retries=0))
    async with make_api(llm=llm) as api:
        yield api


def _chat(model: str = "openai/gpt-4o-mini") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}]}


async def test_provider_errors_reach_gateway_clients_without_the_key(
    wired: Api, leaky: LeakyOpenAIFake, logs: tuple[io.StringIO, pytest.LogCaptureFixture],
) -> None:
    api = wired
    expected = {
        401: (502, "upstream_authentication_failed", "Incorrect API key provided: [REDACTED]. You can find your API key"),
        400: (400, "upstream_bad_request", "https://upstream.example/v1/chat?api_key=[REDACTED]&x=1"),
        500: (502, "upstream_error", "header Authorization: Bearer [REDACTED] was refused"),
    }
    for upstream, (status, code, kept) in expected.items():
        leaky.leak(upstream)
        response = await api.request("POST", "/v1/chat/completions", as_="member", json=_chat())
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code and kept in error["message"], error
        assert_clean(response.text, f"the gateway's answer to a {upstream}")
        assert leaky.requests[-1].headers["authorization"] == f"Bearer {SERVER_KEY}"  # the key was really sent

    leaky.leak(401)
    streamed = await api.request("POST", "/v1/chat/completions", as_="member", json={**_chat(), "stream": True})
    assert_clean(streamed.text, "a streamed answer")
    assert "[REDACTED]" in streamed.text or streamed.status_code == 502, streamed.text

    ok = await api.request("POST", "/v1/chat/completions", as_="member", json=_chat())
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "Hi"  # unharmed

    stream, caplog = logs
    assert stream.getvalue() and caplog.records
    assert_clean(stream.getvalue(), "the JSON logs")
    assert_clean(caplog.text, "the captured log records")


async def test_a_failed_runs_stored_error_and_events_hold_no_key(
    wired: Api, leaky: LeakyOpenAIFake, tmp_path: Path, logs: tuple[io.StringIO, pytest.LogCaptureFixture],
) -> None:
    api = wired
    agent = await api.create_agent(model="openai/gpt-4o-mini")
    for upstream, kept in ((401, "Incorrect API key provided: [REDACTED]"), (400, "api_key=[REDACTED]&x=1")):
        leaky.leak(upstream)
        started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Hi"})
        assert started.status_code in (201, 202), started.text
        run = await api.wait_run(started.json()["id"])
        assert run["status"] == "failed", run
        assert kept in run["error"]["message"], run["error"]
        assert_clean(json.dumps(run), f"the stored run after a {upstream}")
        events = await api.request("GET", f"/v1/runs/{run['id']}/events")
        assert events.status_code == 200 and "run_finished" in events.text
        assert_clean(events.text, f"the run's events after a {upstream}")
        steps = await api.request("GET", f"/v1/runs/{run['id']}")
        assert_clean(steps.text, "the run as read back")

    # Nowhere in the database files (the WAL holds the newest pages), nor in the logs.
    files = [p for p in tmp_path.iterdir() if p.name.startswith("agentadapter.db")]
    assert files
    for path in files:
        assert_clean(path.read_bytes(), path.name)
    stream, caplog = logs
    assert_clean(stream.getvalue(), "the JSON logs")
    assert_clean(caplog.text, "the captured log records")


async def test_metrics_show_catalog_models_and_route_templates_never_tenants_names(
    wired: Api, leaky: LeakyOpenAIFake,
) -> None:
    api = wired
    secret_model = f"acme-private-finetune-{uuid.uuid4().hex[:8]}"
    secret_path = f"/v1/acme-internal-{uuid.uuid4().hex[:8]}"
    agent_id = str(uuid.uuid4())
    for model in (f"openai/{secret_model}", "openai/gpt-4o-mini"):
        answered = await api.request("POST", "/v1/chat/completions", as_="member", json=_chat(model))
        assert answered.status_code == 200, answered.text
    assert (await api.request("GET", secret_path)).status_code == 404
    assert (await api.request("GET", f"/v1/agents/{agent_id}")).status_code == 404

    scraped = await api.client.get("/metrics")
    assert scraped.status_code == 200
    text = scraped.text
    for private in (secret_model, secret_path.rsplit("/", 1)[1], agent_id):
        assert private not in text
    assert 'agentadapter_llm_requests_total{model="other",outcome="ok",provider="openai"}' in text
    assert 'agentadapter_llm_requests_total{model="gpt-4o-mini",outcome="ok",provider="openai"}' in text
    assert 'agentadapter_llm_in_flight{target="openai/other"}' in text
    assert 'route="/v1/agents/{agent_id}",status="404"' in text
    assert 'route="unmatched",status="404"' in text


async def test_metrics_ask_for_the_operators_token_when_one_is_set(make_api: AppFactory) -> None:
    async with make_api(server={"metrics_token": METRICS_TOKEN}) as api:
        tenant = await api.tenant()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN},
                        tenant.headers("admin")):
            refused = await api.client.get("/metrics", headers=headers)
            assert refused.status_code == 401, (headers, refused.text)
            assert refused.json()["error"]["code"] == "invalid_metrics_token"
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "agentadapter_" not in refused.text
        allowed = await api.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert allowed.status_code == 200 and "agentadapter_http_requests_total" in allowed.text
        assert (await api.client.get("/healthz")).status_code == 200  # the probes stay open


async def test_metrics_stay_open_without_a_token(api: Api) -> None:
    assert (await api.client.get("/metrics")).status_code == 200
