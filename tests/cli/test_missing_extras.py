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
