"""Runs docs/agents.md's Python snippets in order, in one namespace, as a reader would paste them.

Run as a script (by tests/docs/test_agents_md.py) in a fresh process: the snippets register tools and
agent types globally. A snippet with top-level ``await`` runs on its own event loop; the others run as
they are (the first calls ``asyncio.run`` itself).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
from pathlib import Path


def snippets(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def main(path: str) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, code in enumerate(snippets(Path(path).read_text("utf-8")), start=1):
        compiled = compile(code, f"{path} snippet {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(compiled, namespace)
        if inspect.iscoroutine(result):
            asyncio.run(result)
        print(f"snippet {number}: ok", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
