"""docs/evaluation.md runs as written: its Python snippets, in order, in a directory holding the page's
dataset (its first YAML block as ``capitals.yaml``), on offline models only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"


def test_every_snippet_runs_in_order_and_the_printed_numbers_are_the_pages(tmp_path: Path) -> None:
    text = PAGE.read_text("utf-8")
    (tmp_path / "capitals.yaml").write_text(re.search(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M).group(1))
    snippets = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    (tmp_path / "page.py").write_text("\n".join(snippets))
    result = subprocess.run([sys.executable, "page.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    printed = result.stdout.splitlines()
    shown = [line for block in re.findall(r"^```text\n(.*?)^```", text, flags=re.S | re.M)[:2]
             for line in block.splitlines()]
    assert printed[0] == "capitals 4d9836eb7e57f041 8"
    assert printed[1:] == shown  # what the page says it prints is what it prints
    assert (tmp_path / "bench.csv").read_text().startswith("subject,case_id,repetition,score,contains,latency")
