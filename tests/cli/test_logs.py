"""The CLI's warnings: sentences on a terminal, JSON lines in a pipe or when asked, naming the model as written."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = "backends:\n  my-vllm: {type: openai, base_url: 'http://127.0.0.1:9/v1', api_key: x}\n"


def _cost(tmp_path: Path, *, env: dict[str, str], stderr: int | None = None) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "agentadapter.yaml"
    config.write_text(CONFIG)
    return subprocess.run(
        [sys.executable, "-m", "agentadapter.cli", "cost", "hi", "--models", "my-vllm/llama-3", "--config",
         str(config)],
        capture_output=stderr is None, stdout=subprocess.PIPE if stderr is not None else None, stderr=stderr,
        text=True, env={**os.environ, **env}, timeout=120, check=False,
    )


def test_in_a_pipe_warnings_are_json_lines_naming_the_model_as_written(tmp_path):
    result = _cost(tmp_path, env={})
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    record = json.loads(line)
    assert record["level"] == "warning" and "'my-vllm/llama-3' is not in the catalog" in record["event"]
    assert "openai/llama-3" not in record["event"]


def test_log_format_text_writes_sentences(tmp_path):
    result = _cost(tmp_path, env={"AGENTADAPTER_LOG_FORMAT": "text"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: model 'my-vllm/llama-3' is not in the catalog;")
    assert "{" not in result.stderr.splitlines()[0][:20]


def test_on_a_terminal_warnings_are_sentences(tmp_path):
    leader, follower = pty.openpty()
    try:
        result = _cost(tmp_path, env={"AGENTADAPTER_LOG_FORMAT": ""}, stderr=follower)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is closed once its last writer is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert result.returncode == 0
    text = b"".join(chunks).decode()
    assert text.startswith("warning: model 'my-vllm/llama-3' is not in the catalog;"), text


def test_an_unknown_log_format_is_a_usage_error(tmp_path):
    result = _cost(tmp_path, env={"AGENTADAPTER_LOG_FORMAT": "xml"})
    assert result.returncode == 2 and "AGENTADAPTER_LOG_FORMAT" in result.stderr


@pytest.mark.parametrize("text", [True, False])
def test_configure_logging_renders_extra_fields(text):
    import logging

    from agentadapter.observability.logging import configure_logging, get_logger

    root = logging.getLogger("agentadapter")
    saved = (list(root.handlers), root.level, root.propagate)
    stream = io.StringIO()
    configure_logging("INFO", stream=stream, text=text)
    try:
        get_logger("agentadapter.test_logs").warning("the model is slow", extra={"model": "x/y"})
    finally:  # other tests read the tree through propagation (caplog): put it back as it was
        root.handlers[:], root.level, root.propagate = saved
    line = stream.getvalue().strip()
    if text:
        assert line == "warning: the model is slow (model=x/y)"
    else:
        assert json.loads(line)["model"] == "x/y"
