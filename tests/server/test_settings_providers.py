"""``/v1/settings`` (the current user's: an API key acts as the tenant's default user) and ``/v1/providers``."""

from __future__ import annotations

from server.conftest import Api


async def test_settings_are_read_patched_and_replaced(any_api: Api) -> None:
    api = any_api
    initial = await api.request("GET", "/v1/settings")
    assert initial.status_code == 200
    assert {k: initial.json()[k] for k in ("default_model", "default_models", "rag_archives", "prefer_local")} == \
        {"default_model": None, "default_models": {}, "rag_archives": [], "prefer_local": False}

    patched = await api.request("PATCH", "/v1/settings", json={
        "default_model": "test/echo", "default_models": {"chat": "test/echo", "tools": "test/tools"},
        "rag_archives": ["s3://handbook", "/srv/archive.zip"]})
    assert patched.status_code == 200
    again = (await api.request("PATCH", "/v1/settings", json={"prefer_local": True, "rag_archives": None})).json()
    assert (again["default_model"], again["prefer_local"], again["rag_archives"]) == \
        ("test/echo", True, ["s3://handbook", "/srv/archive.zip"])

    replaced = (await api.request("PUT", "/v1/settings", json={"rag_archives": ["s3://only"]})).json()
    assert (replaced["default_model"], replaced["prefer_local"], replaced["rag_archives"], replaced["default_models"]) \
        == (None, False, ["s3://only"], {})

    # Another key of the same tenant acts as the same default user; another tenant has its own settings.
    assert (await api.request("GET", "/v1/settings", as_="viewer")).json()["rag_archives"] == ["s3://only"]
    assert (await api.request("GET", "/v1/settings", tenant="b")).json()["rag_archives"] == []


async def test_settings_refuse_unknown_models_and_fields(api: Api) -> None:
    bad_model = await api.request("PATCH", "/v1/settings", json={"default_model": "nowhere/model"})
    assert bad_model.status_code == 422 and bad_model.json()["error"]["param"] == "default_model"
    bad_purpose = await api.request("PUT", "/v1/settings", json={"default_models": {"chat": "nowhere/x"}})
    assert bad_purpose.json()["error"]["param"] == "default_models.chat"
    unknown = await api.request("PATCH", "/v1/settings", json={"theme": "dark"})
    assert unknown.status_code == 422 and unknown.json()["error"]["param"] == "theme"
    wrong_type = await api.request("PATCH", "/v1/settings", json={"prefer_local": "sometimes"})
    assert wrong_type.json()["error"]["param"] == "prefer_local"


async def test_providers_presets_capabilities_and_health(api: Api) -> None:
    listed = (await api.request("GET", "/v1/providers", as_="viewer")).json()["data"]
    names = {p["name"] for p in listed}
    assert {"openai", "anthropic", "gemini", "groq", "ollama", "test"} <= names
    openai = (await api.request("GET", "/v1/providers/openai")).json()
    assert (openai["key_env"], openai["wire_format"], openai["key_required"]) == ("OPENAI_API_KEY", "openai_chat", True)
    assert "api_key" not in openai
    alias = await api.request("GET", "/v1/providers/claude")
    assert alias.json()["name"] == "anthropic"
    missing = await api.request("GET", "/v1/providers/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "provider_not_found"

    models = (await api.request("GET", "/v1/providers/openai/models")).json()["data"]
    assert models and all(m["id"].startswith("openai/") for m in models) and "context_window" in models[0]
    caps = (await api.request("GET", "/v1/providers/capabilities/openai/gpt-4o-mini")).json()
    assert caps["id"] == "openai/gpt-4o-mini" and caps["tools"] is True and caps["pricing"]["input"] > 0
    bad = await api.request("GET", "/v1/providers/capabilities/no-slash")
    assert bad.status_code == 422

    agent = await api.create_agent()
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "ping"})).json()
    await api.wait_run(run["id"])
    health = (await api.request("GET", "/v1/providers/health")).json()["data"]
    assert any(h["target"].startswith("test/") and h["successes"] >= 1 for h in health)
