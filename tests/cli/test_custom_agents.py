"""Custom agents by configuration: the loader finds files added after start and files fixed after a broken
first load; ``agentadapter agents`` lists them; ``agentadapter run`` builds ``type: <agent>`` entries."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from agentadapter.agents import AgentLoader
from agentadapter.cli import app

AGENT = '''
from agentadapter.agents import AgentResult, BaseAgent


class {cls}(BaseAgent):
    """Answers with a greeting."""

    CAPABILITIES = ("greeting",)

    def __init__(self, greeting: str = "hello") -> None:
        super().__init__()
        self.greeting = greeting

    async def execute(self, context):
        return AgentResult(output=f"{{self.greeting}}, {{context.input_text}}")
'''


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), "utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a change the stamp sees
    return path


async def test_files_added_after_start_and_fixed_after_a_broken_first_load_are_found(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", "this is not python (")
    loader = AgentLoader(tmp_path, entry_points=False, development=False).load()
    assert loader.names() == [] and "SyntaxError" in loader.errors[0].error

    write(tmp_path, "added.py", AGENT.format(cls="Added"))
    assert (await loader.create("added").run("Ada")).output == "hello, Ada"  # found on the lookup that missed

    write(tmp_path, "broken.py", AGENT.format(cls="Fixed"))
    assert (await loader.create("fixed", greeting="hi").run("Bob")).output == "hi, Bob"
    assert loader.errors == []  # the fixed file's old failure is gone

    dev = AgentLoader(tmp_path, entry_points=False, development=True).load()
    write(tmp_path, "later.py", AGENT.format(cls="Later"))
    assert dev.names() == ["added", "fixed", "later"]  # development mode: listing rescans


def test_agentadapter_agents_lists_agents_and_broken_modules(tmp_path: Path) -> None:
    write(tmp_path, "greeter.py", AGENT.format(cls="Greeter"))
    write(tmp_path, "oops.py", "import nothing_by_this_name\n")
    result = CliRunner().invoke(app, ["agents", "--dir", str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert [(a["name"], a["capabilities"]) for a in data["agents"]] == [("greeter", ["greeting"])]
    assert data["agents"][0]["source"].endswith("greeter.py")
    assert data["errors"][0]["source"].endswith("oops.py") and "ModuleNotFoundError" in data["errors"][0]["error"]
    (tmp_path / "oops.py").unlink()
    table = CliRunner().invoke(app, ["agents", "--dir", str(tmp_path)])
    assert table.exit_code == 0 and "greeter" in table.stdout and "greeting" in table.stdout


def test_a_workflow_names_a_custom_agent_by_type(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    write(agents, "greeter.py", AGENT.format(cls="Greeter"))
    flow = write(
        tmp_path,
        "flow.yaml",
        """
        agents:
          - {name: welcome, type: greeter, params: {greeting: welcome}}
          - {name: echo, model: test/echo}
    """,
    )
    result = CliRunner().invoke(app, ["run", str(flow), "--agents", str(agents), "--input", "Cleo", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [a["output"] for a in data["agents"]] == ["welcome, Cleo", "welcome, Cleo"]
