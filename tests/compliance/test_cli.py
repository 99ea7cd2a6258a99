"""``agentadapter compliance``: a tenant's report (JSON and HTML), its erasure, and the due erasures."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner


def test_report_erase_and_run_due(cli: tuple[CliRunner, typer.Typer], tmp_path: Path) -> None:
    runner, app = cli
    assert runner.invoke(app, ["tenants", "create", "acme"]).exit_code == 0
    assert runner.invoke(app, ["keys", "create", "--tenant", "acme"]).exit_code == 0

    shown = runner.invoke(app, ["compliance", "report", "acme"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["tenant"]["name"] == "acme" and report["data_held"]["api_keys"]["count"] == 1
    assert report["access"]["audit_entries_by_role"]["operator"]["actions"]["api_key.create"] == 1
    page = tmp_path / "report.html"
    assert runner.invoke(app, ["compliance", "report", "acme", "--html", "-o", str(page)]).exit_code == 0
    assert "<h1>Compliance report: acme</h1>" in page.read_text()

    pending = runner.invoke(app, ["compliance", "erase", "acme", "--reason", "closing"])
    assert pending.exit_code == 0, pending.output
    assert json.loads(pending.stdout)["status"] == "pending"
    ran = runner.invoke(app, ["compliance", "run-due"])
    assert ran.exit_code == 0 and "0 erasure(s)" in ran.stdout  # still in its window

    bad = runner.invoke(app, ["compliance", "erase", "acme", "--user", "nobody"])
    assert bad.exit_code != 0 and "UUID" in bad.output
    erased = runner.invoke(app, ["compliance", "erase", "acme", "--now"])
    assert erased.exit_code == 0, erased.output
    done = json.loads(erased.stdout)
    assert done["status"] == "done" and done["report"]["deleted"]["tenants"] == 1
    gone = runner.invoke(app, ["compliance", "report", "acme"])
    assert gone.exit_code != 0 and "acme" in gone.output
