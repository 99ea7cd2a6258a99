"""The deployment files, checked statically (no container engine is needed): the Dockerfile's stages,
compose.yaml's wiring, nginx's upstreams, and the settings named in .env.example and compose.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from agentadapter.config import Settings
from agentadapter.server.settings import ServerSettings
from agentadapter.service.worker_settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip().lstrip("#").strip()
        if re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", line):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def _known_settings() -> set[str]:
    names = set()
    for model in (Settings, ServerSettings, WorkerSettings):
        prefix = str(model.model_config.get("env_prefix", ""))
        names |= {(prefix + field).upper() for field in model.model_fields}
    return names


def test_the_dockerfile_builds_in_one_stage_and_runs_in_another_as_a_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, re.M), "the base image is a build argument"
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert [s.split()[0] for s in stages] == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    builder, runtime = stages
    assert "AS builder" in builder and "pip wheel" in builder and "build-essential" in builder
    assert "ARG EXTRAS=" in runtime and '"agentadapter[${EXTRAS}]"' in runtime and "--no-index" in runtime
    assert "apt-get" not in runtime and "build-essential" not in runtime, "no compilers in the runtime image"
    users = re.findall(r"^USER (\S+)", runtime, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/readyz", runtime, re.M)
    assert 'ENTRYPOINT ["agentadapter"]' in runtime
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored, "the build context is an allow-list"
    assert not any(line.startswith("!") and ".env" in line for line in ignored)


def test_compose_migrates_once_before_the_apis_and_workers_and_keeps_secrets_in_env_files() -> None:
    services = _compose()["services"]
    assert {"nginx", "api1", "api2", "worker1", "worker2", "migrate", "postgres", "redis", "rabbitmq"} <= set(services)
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api1", "api2", "worker1", "worker2"):
        service = services[name]
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert service["env_file"] == [".env"], name
        secrets = [k for k in service["environment"] if re.search(r"SECRET|PASSWORD|_KEY$|TOKEN", k)]
        assert secrets == [], f"{name} sets secrets in compose.yaml: {secrets}"
    for name in ("api1", "api2"):
        assert services[name]["command"][0] == "serve" and "--no-migrate" in services[name]["command"]
    for name in ("worker1", "worker2"):
        assert services[name]["command"][0] == "worker"
        assert services[name]["healthcheck"] == {"disable": True}
    assert {services[n]["command"][2] for n in ("worker1", "worker2")} == {"worker1@%h", "worker2@%h"}
    assert {v for n in ("api1", "api2", "worker1", "worker2") for v in services[n]["volumes"]} == {
        "api1:/data", "api2:/data", "worker1:/data", "worker2:/data"}, "one data volume (ledger journal) each"
    env = _env_example()
    grace = float(env["AGENTADAPTER_SHUTDOWN_GRACE_S"]) + float(env["AGENTADAPTER_SHUTDOWN_DELAY_S"])
    assert float(services["api1"]["stop_grace_period"].rstrip("s")) > grace
    assert services["nginx"]["depends_on"] == {"api1": {"condition": "service_healthy"},
                                               "api2": {"condition": "service_healthy"}}


def test_nginx_balances_the_compose_api_instances_and_retries_refused_connections() -> None:
    mounted = _compose()["services"]["nginx"]["volumes"][0].split(":")[0]
    conf = (ROOT / mounted).read_text()
    upstream = re.search(r"upstream agentadapter_api \{(.*?)\}", conf, re.S)
    assert upstream is not None
    assert re.findall(r"server (\w+):8000", upstream.group(1)) == ["api1", "api2"]
    assert re.search(r"^\s*keepalive\s", upstream.group(1), re.M) is None
    assert "proxy_next_upstream error timeout;" in conf and "non_idempotent" not in conf
    assert "proxy_buffering off;" in conf


def test_every_setting_named_in_the_deployment_files_exists() -> None:
    known = _known_settings()
    named = {n for n in _env_example() if n.startswith("AGENTADAPTER_")}
    for service in _compose()["services"].values():
        named |= {n for n in service.get("environment") or {} if n.startswith("AGENTADAPTER_")}
    assert named, "no settings found"
    assert named - known == set(), f"unknown settings: {sorted(named - known)}"
