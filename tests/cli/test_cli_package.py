"""The command line is one package: ``python -m agentadapter.cli`` runs every command, nothing lives at the old paths."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest


def test_python_m_agentadapter_cli_runs_the_whole_command() -> None:
    done = subprocess.run([sys.executable, "-m", "agentadapter.cli", "--help"], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("chat", "run", "serve", "db", "tenants", "keys", "provider-keys", "secrets", "credits",
                    "cluster", "worker"):
        assert f" {command} " in done.stdout, f"{command} is missing from:\n{done.stdout}"


def test_a_usage_error_of_a_subcommand_exits_2() -> None:
    done = subprocess.run([sys.executable, "-m", "agentadapter.cli", "keys", "create"], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 2
    assert "--tenant" in done.stderr


@pytest.mark.parametrize("old", ["cli_service", "cli_run", "cli_cluster", "cli_credits", "cli_data", "cli_secrets"])
def test_the_old_modules_are_gone(old: str) -> None:
    assert importlib.util.find_spec(f"agentadapter.{old}") is None


def test_version_and_short_help() -> None:
    from importlib.metadata import version

    from typer.testing import CliRunner

    from agentadapter.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["--version"])
    assert shown.exit_code == 0 and shown.stdout.strip() == f"agentadapter {version('agentadapter')}"
    assert runner.invoke(app, ["-V"]).stdout == shown.stdout
    short = runner.invoke(app, ["-h"])
    assert short.exit_code == 0 and "Commands" in short.stdout
