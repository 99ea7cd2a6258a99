"""``agentadapter serve --ready-file PATH``: the file appears once the server is ready, and goes with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.services import free_port, log_tail, stop_group


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            stop_group(process)


def _wait_for(path: Path, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 90) -> None:
    pause = threading.Event()  # never set: its wait is the pause between looks
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text().startswith("http")):
        assert process.poll() is None, f"serve exited early:\n{log_tail(log)}"
        assert time.monotonic() < deadline, f"no ready file after {timeout_s} s:\n{log_tail(log)}"
        pause.wait(0.05)


def test_ready_file_names_the_url_once_readyz_answers(tmp_path: Path, started: list[subprocess.Popen[bytes]]):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AGENTADAPTER_") or k == "AGENTADAPTER_TEST_REDIS_URL"}
    env["AGENTADAPTER_DATA_DIR"] = str(tmp_path / "data")
    ready = tmp_path / "ready"
    ready.write_text("stale\n")  # left by an earlier server: serve removes it before it is ready
    log = tmp_path / "serve.log"
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "agentadapter.cli", "serve", "--port", str(port), "--ready-file", str(ready),
             "--no-access-log", "--log-level", "warning"],
            env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    started.append(process)
    _wait_for(ready, process, log)
    url = ready.read_text().strip()
    assert url == f"http://127.0.0.1:{port}"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(url + "/readyz", timeout=10) as answer:
        assert answer.status == 200
    with direct.open(url + "/", timeout=10) as answer:
        assert json.loads(answer.read())["links"]["docs"] == "/docs"
    stop_group(process)
    assert process.returncode == 128 + 15, log_tail(log)  # stopped by SIGTERM, gracefully
    assert not ready.exists(), "the ready file outlived the server"
