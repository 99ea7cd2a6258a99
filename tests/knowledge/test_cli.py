"""``agentadapter files`` and ``archives`` at the command line: upload into an archive, ingest now, search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agentadapter.config import get_settings


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from agentadapter.cli.files import register as register_files
    from agentadapter.cli.service import register as register_service

    for name in ("AGENTADAPTER_DATABASE_URL", "AGENTADAPTER_REDIS_URL", "AGENTADAPTER_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTADAPTER_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    app = typer.Typer()
    register_service(app)
    register_files(app)
    yield CliRunner(), app
    get_settings.cache_clear()


def test_files_add_into_an_archive_then_search(cli: tuple[CliRunner, typer.Typer], tmp_path: Path) -> None:
    runner, app = cli
    assert runner.invoke(app, ["tenants", "create", "acme"]).exit_code == 0
    created = runner.invoke(app, ["archives", "create", "handbook", "--tenant", "acme", "--json"])
    assert created.exit_code == 0, created.output
    notes = tmp_path / "notes.md"
    notes.write_text("# Holidays\n\nEvery employee has twenty-five days of paid leave a year.\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    added = runner.invoke(app, ["files", "add", str(notes), "--tenant", "acme", "--archive", "handbook", "--json"])
    assert added.exit_code == 0, added.output
    [row] = json.loads(added.stdout)
    assert (row["media_type"], row["status"], row["chunks"]) == ("text/markdown", "ready", 1)

    failed = runner.invoke(app, ["files", "add", str(empty), "--tenant", "acme", "--archive", "handbook"])
    assert failed.exit_code == 1 and "no text" in failed.output

    found = runner.invoke(app, ["archives", "search", "handbook", "how much vacation do I get", "--tenant", "acme",
                                "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert hits[0]["filename"] == "notes.md" and hits[0]["section"] == "Holidays"

    listed = runner.invoke(app, ["files", "list", "--tenant", "acme", "--json"])
    assert {f["filename"] for f in json.loads(listed.stdout)} == {"notes.md", "empty.txt"}
    removed = runner.invoke(app, ["files", "rm", row["id"], "--tenant", "acme"])
    assert removed.exit_code == 0
    gone = runner.invoke(app, ["archives", "search", "handbook", "vacation", "--tenant", "acme", "--json"])
    assert json.loads(gone.stdout) == []
    unknown = runner.invoke(app, ["archives", "search", "nope", "x", "--tenant", "acme"])
    assert unknown.exit_code == 2 and "no archive 'nope'" in unknown.output
