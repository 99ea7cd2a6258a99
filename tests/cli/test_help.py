"""Every command's help: each option explained, values named as TEXT / N / PATH, never Python types."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agentadapter.cli import command

TYPE_TAG = re.compile(r"<(str|bool|int|float|path|list\[[^\]]*\])[^>]*>")


def _commands(node: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, node)]
    for name, child in getattr(node, "commands", {}).items():
        found.extend(_commands(child, (*path, name)))
    return found


COMMANDS = _commands(command())


@pytest.mark.parametrize(("path", "node"), COMMANDS, ids=[" ".join(p) or "agentadapter" for p, _ in COMMANDS])
def test_help_explains_every_option_without_type_tags(path: tuple[str, ...], node: Any, monkeypatch, capsys) -> None:
    undocumented = [param.name for param in node.params if not (param.help or "").strip()]
    assert not undocumented, f"agentadapter {' '.join(path)}: options without help: {undocumented}"
    output = _help(monkeypatch, capsys, [*path, "--help"], columns=80)
    assert not TYPE_TAG.search(output), output
    assert max(len(line) for line in output.splitlines()) <= 80


def _help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], columns: int) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as exited:
        command()(args, prog_name="agentadapter")
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_values_are_named_for_what_they_are(monkeypatch, capsys) -> None:
    output = _help(monkeypatch, capsys, ["chat", "-h"], columns=120)
    assert "MODEL" in output and "PROMPT" in output
    line = next(line for line in output.splitlines() if "--max-tokens" in line)
    assert " N " in line
    json_line = next(line for line in output.splitlines() if "--json" in line)
    assert "TEXT" not in json_line and "bool" not in json_line
