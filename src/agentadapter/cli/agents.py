"""``agentadapter agents``: the operator's custom agents, as the agent loader finds them.

The loader (:class:`~agentadapter.agents.loader.AgentLoader`) reads the directories of
``AGENTADAPTER_AGENTS_DIRS`` (and ``--dir``) and the ``agentadapter.agents`` entry points; this command
lists every agent found - name, type, capabilities, where it came from - and every module that failed
to load, with why (exit code 1 when one did). :func:`operator_loader` is the loader ``agentadapter run``
uses too, so a workflow file names these agents as ``type: <agent name>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from agentadapter.agents.loader import AgentLoader

__all__ = ["operator_loader", "register"]


def operator_loader(extra: list[Path] | None = None) -> AgentLoader:
    """The loader of the operator's agents (settings' directories, then ``extra``), loaded."""
    from agentadapter.agents.loader import AgentLoader
    from agentadapter.config import get_settings

    return AgentLoader([*get_settings().agents_dirs, *(extra or [])]).load()


def register(app: typer.Typer) -> None:
    """Add the ``agents`` command to ``app``."""
    app.command("agents")(list_agents_command)


def list_agents_command(
    directory: Annotated[
        list[Path] | None, typer.Option("--dir", "-d", help="another directory of agent modules (repeatable)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the agents and errors as JSON")] = False,
) -> None:
    """List the custom agents the loader finds, and the modules that failed to load."""
    from agentadapter.cli.tables import Column, show_table

    loader = operator_loader(directory)
    metadata = loader.metadata()
    sources = loader.sources()
    if as_json:
        print(
            json.dumps(
                {
                    "agents": [{**m.to_dict(), "source": sources.get(m.name)} for m in metadata],
                    "errors": [{"source": e.source, "error": e.error} for e in loader.errors],
                },
                indent=2,
            )
        )
    else:
        out = Console(highlight=False, soft_wrap=True)
        if metadata:
            show_table(
                out,
                [Column("agent"), Column("type"), Column("capabilities"), Column("source")],
                [[m.name, m.agent_type, ", ".join(m.capabilities), sources.get(m.name, "")] for m in metadata],
            )
        else:
            out.print("no custom agents found (set AGENTADAPTER_AGENTS_DIRS, or give --dir)")
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for error in loader.errors:
            err.print(f"[bold red]error:[/] {escape(error.source)}: {escape(error.error)}", markup=True)
    if loader.errors:
        raise typer.Exit(1)
