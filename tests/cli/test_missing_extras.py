"""A local model used without its extra installed: the error names the extra and the commands that install it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs the CLI with the runner's modules made unimportable, as in a venv set up without --local.
BLOCKED = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
sys.argv = ["agentadapter", *{args!r}]
from agentadapter.cli import main
main()
"""


def _without(blocked: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTADAPTER_", "LOCAL_MODEL"))}
    return subprocess.run([sys.executable, "-c", BLOCKED.format(blocked=blocked, args=list(args))], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("model", "blocked", "extra"), [
    ("local/mlx/{path}", ["mlx", "mlx.core", "mlx_lm"], "agentadapter[mlx]"),
    ("local/transformers/{path}", ["torch", "transformers"], "agentadapter[transformers]"),
])
def test_a_local_model_without_its_extra_names_the_extra(model, blocked, extra, tmp_path):
    weights = tmp_path / "tiny"
    weights.mkdir()
    (weights / "config.json").write_text(json.dumps({"model_type": "llama"}))
    result = _without(blocked, "chat", model.format(path=weights), "hi", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"pip install '{extra}'" in result.stderr  # the brackets survive the terminal's markup
    assert "./dev setup --local" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "env", "blocked", "extra"), [
    (["worker"], {}, ["celery"], "celery"),
    (["tenants", "list"], {"AGENTADAPTER_DATABASE_URL": "postgresql://postgres@127.0.0.1:9/none"}, ["asyncpg"],
     "postgres"),
    (["files", "add", "--tenant", "acme", "notes.txt"], {}, ["filetype"], "knowledge"),
    (["cluster", "up", "--workers", "1"], {}, ["asyncpg"], "postgres"),
], ids=["worker without celery", "postgres without asyncpg", "files without the knowledge extra",
        "cluster without asyncpg"])
def test_a_command_without_its_extra_names_the_extra(args, env, blocked, extra, tmp_path, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "notes.txt").write_text("a file to upload")
    code = BLOCKED.format(blocked=blocked, args=args)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENTADAPTER_") or k in env}
    environment["AGENTADAPTER_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"the {extra!r} extra, which is not installed" in result.stderr
    assert f"pip install 'agentadapter[{extra}]'" in result.stderr and "./dev setup --all" in result.stderr
    assert "Traceback" not in result.stderr
