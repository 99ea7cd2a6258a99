"""``agentadapter eval run`` and ``eval compare`` as processes: a dataset file against two agents on offline
models (one a scripted backend that knows the answers), the table at 80 columns, the comparison with its
winner, JSON and CSV outputs, three subjects as a benchmark, and usage errors as exit code 2."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

DATASET = """\
name: capitals
evaluators: [contains]
cases:
  - {id: fr, input: "What is the capital of France?", expected: Paris}
  - {id: it, input: "What is the capital of Italy?", expected: Rome}
  - {id: jp, input: "What is the capital of Japan?", expected: Tokyo}
  - {id: eg, input: "What is the capital of Egypt?", expected: Cairo}
  - {id: pe, input: "What is the capital of Peru?", expected: Lima}
"""

# A backend scripted in a module the workflow's agent config names: it answers from a table.
SCRIPTED = """\
from agentadapter.llm.backends.testing import FunctionBackend
from agentadapter.llm.backends.base import register_backend

ANSWERS = {"France": "Paris", "Italy": "Rome", "Japan": "Tokyo", "Egypt": "Cairo", "Peru": "Lima"}


class Knows(FunctionBackend):
    type_name = "knows"

    def __init__(self, config=None, *, transport=None):
        def answer(request):
            text = request.messages[-1].text
            return next((f"It is {city}." for country, city in ANSWERS.items() if country in text), "No idea.")
        super().__init__(answer, name=config.name if config else "knows")


register_backend("knows", Knows)
"""


def cli(*args: str, cwd: Path, terminal: bool = False, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR")}
    env["COLUMNS"] = str(columns)
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), env.get("PYTHONPATH", "")])
    if terminal:
        env["TTY_COMPATIBLE"] = "1"
    code = "import scripted_backend; from agentadapter.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "capitals.yaml").write_text(DATASET)
    (tmp_path / "scripted_backend.py").write_text(SCRIPTED)
    (tmp_path / "agentadapter.yaml").write_text(
        "backends:\n  knows: {type: knows}\n"
        "catalog:\n  knows/m: {pricing: {input: 2.0, output: 2.0}}\n")
    (tmp_path / "echo.yaml").write_text("name: echo\nagents:\n  - {name: echo, model: test/echo}\n")
    (tmp_path / "expert.yaml").write_text("name: expert\nagents:\n  - {name: expert, model: knows/m}\n")
    return tmp_path


def test_two_agents_give_a_table_and_a_comparison_that_names_the_winner(project: Path):
    result = cli("eval", "run", "capitals.yaml", "--subject", "echo.yaml", "--subject", "expert.yaml",
                 "--repeat", "2", cwd=project, terminal=True)
    assert result.returncode == 0, result.stderr
    lines = ANSI.sub("", result.stdout).splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in result.stdout
    words = " ".join(" ".join(lines).split())
    assert "expert is better than echo on score" in words
    assert re.search(r"\+1\.000 \(95% CI \+1\.000\.\.\+1\.000, n=5\)", words), words


def test_json_and_csv_outputs_and_compare_from_the_saved_result(project: Path):
    result = cli("eval", "run", "capitals.yaml", "-s", "echo.yaml", "-s", "expert.yaml", "--json",
                 "--output", "result.json", cwd=project)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["comparison"]["winner"] == "expert" and data["completed"] == 10
    summary = {s["subject"]: s for s in data["summary"]}
    assert summary["expert"]["score"] == 1.0 and summary["echo"]["score"] == 0.0
    assert summary["expert"]["cost_usd"] > 0 and summary["echo"]["cost_usd"] == 0
    assert json.loads((project / "result.json").read_text())["dataset_version"] == data["dataset_version"]
    compared = cli("eval", "compare", "result.json", "--a", "echo", "--b", "expert", "--json", cwd=project)
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["winner"] == "expert"
    written = cli("eval", "run", "capitals.yaml", "-s", "expert.yaml", "-o", "rows.csv", cwd=project)
    assert written.returncode == 0, written.stderr
    rows = list(csv.DictReader((project / "rows.csv").open()))
    assert [r["case_id"] for r in rows] == ["fr", "it", "jp", "eg", "pe"] and {r["contains"] for r in rows} == {"1.0"}


def test_three_models_give_a_benchmark_with_a_recommendation(project: Path):
    result = cli("eval", "run", "capitals.yaml", "-s", "test/echo", "-s", "knows/m", "-s", "copy=knows/m", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "quality x cost x latency" not in result.stdout  # a pipe gets plain columns, no title
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("subject") and "pareto" in line)
    assert header.split() == ["subject", "score", "$/case", "p50", "ms", "pareto", "pick"]
    assert any(line.startswith("recommendation: ") for line in lines)


@pytest.mark.parametrize(("args", "message"), [
    (("eval", "run", "missing.yaml", "-s", "test/echo"), "cannot read dataset file"),
    (("eval", "run", "capitals.yaml", "-s", "nope/model"), "unknown provider 'nope'"),
    (("eval", "run", "capitals.yaml", "-s", "test/echo", "-e", "{bad json"), "not JSON"),
    (("eval", "run", "capitals.yaml", "-s", "test/echo", "-e", "python"), "unknown evaluator type"),
    (("eval", "run", "capitals.yaml", "-s", "test/echo", "-o", "out.txt"), "name it .json or .csv"),
    (("eval", "compare", "capitals.yaml", "--a", "x", "--b", "y"), "not JSON"),
])
def test_usage_errors_exit_2_with_what_to_fix(project: Path, args, message):
    result = cli(*args, cwd=project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
