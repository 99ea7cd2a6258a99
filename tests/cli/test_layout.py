"""The CLI's tables at 80 columns on a terminal and through a pipe: every value whole, nothing cut to ``mo…``.

The commands run as processes, as a user runs them: ``TTY_COMPATIBLE=1`` makes rich treat the
captured stream as a terminal of ``COLUMNS`` columns; without it the output is a pipe.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from agentadapter.llm import catalog

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli(*args: str, terminal: bool, columns: int = 80, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR")}
    env["COLUMNS"] = str(columns)
    if terminal:
        env["TTY_COMPATIBLE"] = "1"
    return subprocess.run([sys.executable, "-m", "agentadapter.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120, check=False)


def visible_lines(text: str) -> list[str]:
    return ANSI.sub("", text).splitlines()


def test_models_at_80_columns_show_every_id_whole_within_the_width():
    result = cli("models", terminal=True)
    assert result.returncode == 0, result.stderr
    lines = visible_lines(result.stdout)
    assert lines and max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    shown = {line.strip() for line in lines}
    assert set(catalog.known_models()) <= shown  # each id on a line of its own, whole


def test_models_through_a_pipe_are_plain_aligned_columns():
    result = cli("models", terminal=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["model", "context", "max"]
    assert "\x1b[" not in result.stdout and "│" not in result.stdout and "…" not in result.stdout
    first_cells = {line.split()[0] for line in lines[1:]}
    assert set(catalog.known_models()) == first_cells


def test_a_wide_terminal_gets_the_boxed_table():
    result = cli("backends", terminal=True, columns=250)
    assert result.returncode == 0, result.stderr
    assert "┃ provider" in ANSI.sub("", result.stdout)


def test_backends_at_80_columns_keep_base_urls_whole():
    result = cli("backends", terminal=True)
    assert result.returncode == 0, result.stderr
    text = ANSI.sub("", result.stdout)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "https://api.groq.com/openai/v1" in text and "…" not in text


def test_cost_shows_unknown_prices_and_exits_1_when_a_row_failed(tmp_path):
    config = tmp_path / "agentadapter.yaml"
    # Port 9 on loopback: nothing listens, so the call fails as a connection error; the model is unpriced.
    config.write_text("backends:\n  dead: {type: custom, base_url: 'http://127.0.0.1:9/v1'}\n")
    result = cli("cost", "hello", "--models", "test/echo,dead/m", "--run", "--config", str(config), terminal=False)
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["dead/m"][1:3] == ["unknown", "-"] and rows["dead/m"][-1] == "APIConnectionError"
    assert rows["test/echo"][1:3] == ["0", "0"]
    assert "0.000000" not in result.stdout
    assert "error: dead/m: " in result.stderr and "127.0.0.1:9" in result.stderr


def test_cost_exits_0_when_every_row_answered():
    result = cli("cost", "hello", "--models", "test/echo,test/tools", "--run", terminal=False)
    assert result.returncode == 0, result.stderr


def test_run_table_and_progress_at_80_columns_keep_long_names(tmp_path):
    workflow = tmp_path / "wf.yaml"
    long_name = "an_agent_with_a_rather_long_descriptive_name_for_its_job"
    workflow.write_text(
        "name: long-names\nstrategy: sequential\nagents:\n"
        f"  - {{name: {long_name}, model: test/echo, instructions: Repeat.}}\n"
        "  - {name: second_agent_with_another_long_name_too, model: test/echo, instructions: Repeat.}\n"
    )
    result = cli("run", str(workflow), "--input", "hello", terminal=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = visible_lines(result.stderr)
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stderr
    assert any(long_name in line for line in lines)
    assert result.stdout.strip() == "hello"
    piped = cli("run", str(workflow), "--input", "hello", terminal=False, cwd=tmp_path)
    assert piped.returncode == 0 and long_name in piped.stderr and "│" not in piped.stderr
