"""Against a live ``agentadapter serve``: the walk-through of docs/api.md, run as written (curl and jq),
on a fresh data dir with SQLite; and a client that follows a run's events over a real socket."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow  # processes and brokers of its own: scheduled first (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "agentadapter.cli"]


@dataclass
class Live:
    url: str
    port: int
    env: dict[str, str]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTADAPTER_")}
    env.update(AGENTADAPTER_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    port = _port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([*CLI, "serve", "--port", str(port), "--log-level", "warning"], env=env, cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready in 30 s"
            time.sleep(0.1)
        yield Live(url, port, env)
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def walkthrough() -> str:
    text = (ROOT / "docs" / "api.md").read_text()
    block = re.search(r"```bash\n# walk-through\n(.*?)```", text, re.DOTALL)
    assert block is not None, "docs/api.md lost its walk-through block"
    return block.group(1)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq") and shutil.which("bash")),
                    reason="the walk-through uses bash, curl and jq")
def test_the_docs_walkthrough_runs_end_to_end(live: Live) -> None:
    script = walkthrough()
    serve = re.search(r"^agentadapter serve --port 8000 --ready-file (\S+) &\n", script, re.MULTILINE)
    wait = re.search(r"^until \[ -f (\S+) \];.*\n", script, re.MULTILINE)
    assert serve and wait and serve.group(1) == wait.group(1), "the walk-through starts the server and waits for it"
    # The server is already up (on a free port, tests/cli/test_serve_ready.py covers the ready file);
    # `agentadapter` runs the service commands.
    script = script.replace(serve.group(0), "").replace(wait.group(0), "")
    script = script.replace("127.0.0.1:8000", f"127.0.0.1:{live.port}")
    prelude = f'set -euo pipefail\nagentadapter() {{ "{sys.executable}" -m agentadapter.cli "$@"; }}\n'
    done = subprocess.run(["bash", "-c", prelude + script], env=live.env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert "event: run_started" in out and out.rstrip().endswith("}")  # tokens only if it joined in time
    assert "event: run_finished" in out
    assert '"status": "completed"' in out and '"output": "Why do we have tides?"' in out


def test_events_stream_over_a_real_socket_and_resume(live: Live) -> None:
    subprocess.run([*CLI, "tenants", "create", "live"], env=live.env, cwd=ROOT, check=True, capture_output=True)
    key = subprocess.run([*CLI, "keys", "create", "--tenant", "live"], env=live.env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=10) as client:
        agent = client.post("/v1/agents", json={"name": "live", "model": "test/echo"}).json()
        run = client.post("/v1/runs", json={"agent_id": agent["id"], "input": "one two three"})
        assert run.status_code == 202
        seen: list[tuple[str, str]] = []
        with client.stream("GET", f"/v1/runs/{run.json()['id']}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            event_id = ""
            for line in stream.iter_lines():
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("event: "):
                    seen.append((event_id, line[7:]))
        assert seen[0][1] == "run_started" and seen[-1][1] == "run_finished"
        resumed = client.get(f"/v1/runs/{run.json()['id']}/events", headers={"Last-Event-ID": seen[0][0]})
        assert "event: run_started" not in resumed.text and "event: run_finished" in resumed.text
        assert client.get("/docs").status_code == 200
        assert "agentadapter_http_requests_total" in client.get("/metrics").text
