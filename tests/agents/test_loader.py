"""AgentLoader: agents from a directory of modules and entry points; broken modules are reported."""

from __future__ import annotations

import os
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from agentadapter.agents import AgentLoader, BaseAgent, LLMAgent
from agentadapter.agents import loader as loader_module
from agentadapter.llm.errors import ConfigurationError

GOOD = '''
from dataclasses import dataclass

from agentadapter.agents import AgentContext, AgentResult, BaseAgent, LLMAgent


class Reviewer(BaseAgent):
    """Reviews drafts for clarity.

    Details that are not part of the description.
    """

    CAPABILITIES = ["review", "editing"]

    def __init__(self, name=None, strict=False):
        super().__init__(name)
        self.strict = strict

    async def execute(self, context: AgentContext) -> AgentResult:
        return AgentResult(output="reviewed: " + context.input_text)


researcher = LLMAgent("researcher", model="test/echo", description="Finds facts.", capabilities=("research",))


@dataclass(eq=False)
class Translator(LLMAgent):
    name: str = "translator"
'''

BROKEN = '''
import definitely_not_a_module_xyz
'''

INVALID = '''
from agentadapter.agents import BaseAgent


class SyncAgent(BaseAgent):
    def execute(self, context):
        return None
'''


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def agents_dir(tmp_path: Path) -> Path:
    write(tmp_path, "review.py", GOOD)
    write(tmp_path, "broken.py", BROKEN)
    write(tmp_path, "invalid.py", INVALID)
    write(tmp_path, "_private.py", "raise RuntimeError('never imported')")
    (tmp_path / "notes.txt").write_text("not python")
    return tmp_path


def test_one_directory_may_be_given_as_a_string_or_a_path(agents_dir):
    for given in (str(agents_dir), agents_dir):
        loader = AgentLoader(given, entry_points=False, development=False).load()
        assert loader.paths == [agents_dir]
        assert loader.names() == ["researcher", "reviewer", "translator"]
        assert not any(e.error == "not a directory" for e in loader.errors)


async def test_the_loader_survives_a_broken_module(agents_dir):
    loader = AgentLoader([agents_dir], entry_points=False, development=False).load()
    assert loader.names() == ["researcher", "reviewer", "translator"]
    sources = {Path(e.source.split(":")[0]).name for e in loader.errors}  # "<path>" or "<path>:<attribute>"
    assert sources == {"broken.py", "invalid.py"}
    broken = next(e for e in loader.errors if "broken.py" in e.source)
    assert "ModuleNotFoundError" in broken.error and "definitely_not_a_module_xyz" in broken.traceback
    invalid = next(e for e in loader.errors if "invalid.py" in e.source)
    assert "async def execute" in invalid.error

    reviewer = loader.create("reviewer", strict=True)
    assert isinstance(reviewer, BaseAgent) and reviewer.strict is True
    assert (await reviewer.run("my draft")).output == "reviewed: my draft"
    assert loader.create("Reviewer").name == "reviewer"  # by class name too


def test_metadata_is_extracted_without_running_anything(agents_dir):
    loader = AgentLoader([agents_dir], entry_points=False, development=False)
    meta = {m.name: m for m in loader.metadata()}
    assert meta["reviewer"].capabilities == ("review", "editing")
    assert meta["reviewer"].description == "Reviews drafts for clarity."
    assert meta["reviewer"].agent_type == "custom"
    assert meta["researcher"].agent_type == "llm" and meta["researcher"].capabilities == ("research",)
    assert meta["researcher"].description == "Finds facts."
    assert (meta["translator"].agent_type, meta["translator"].description) == ("llm", "")
    assert isinstance(loader.create("translator", model="test/echo"), LLMAgent)
    researcher = loader.create("researcher")
    assert isinstance(researcher, LLMAgent) and loader.create("researcher") is researcher
    with pytest.raises(ConfigurationError, match="takes no params"):
        loader.create("researcher", model="x")


def test_an_unknown_agent_names_what_failed(agents_dir):
    loader = AgentLoader([agents_dir], entry_points=False, development=False)
    with pytest.raises(ConfigurationError, match=r"no agent named 'ghost'.*broken\.py"):
        loader.get("ghost")
    with pytest.raises(ConfigurationError, match="cannot be created"):
        loader.create("reviewer", unknown_param=1)


def bump(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


async def test_development_mode_reloads_a_changed_module_and_keeps_the_last_good_one(agents_dir):
    loader = AgentLoader([agents_dir], entry_points=False, development=True).load()
    path = agents_dir / "review.py"
    path.write_text(textwrap.dedent(GOOD).replace('"reviewed: "', '"v2: "'))
    bump(path)
    assert (await loader.create("reviewer").run("x")).output == "v2: x"

    errors_before = len(loader.errors)
    path.write_text("this is not python (")
    bump(path)
    assert (await loader.create("reviewer").run("x")).output == "v2: x"  # the last good version
    assert len(loader.errors) == errors_before + 1 and "SyntaxError" in loader.errors[-1].error


def test_production_mode_does_not_reload(agents_dir):
    loader = AgentLoader([agents_dir], entry_points=False, development=False).load()
    path = agents_dir / "review.py"
    path.write_text("raise SystemExit")
    bump(path)
    assert loader.create("reviewer").name == "reviewer"


class Packaged(BaseAgent):
    """An agent a package publishes."""

    CAPABILITIES = ("packaged",)

    async def execute(self, context):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_entry_points_are_loaded_and_broken_ones_reported(monkeypatch, tmp_path):
    points = [
        EntryPoint("packaged", f"{__name__}:Packaged", "agentadapter.agents"),
        EntryPoint("missing", "no_such_package_xyz:Agent", "agentadapter.agents"),
        EntryPoint("not_an_agent", "os:getcwd", "agentadapter.agents"),
    ]

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        assert group == "agentadapter.agents"
        return points

    monkeypatch.setattr(loader_module, "entry_points", fake_entry_points)
    loader = AgentLoader([tmp_path / "does-not-exist"], development=False).load()
    assert loader.names() == ["packaged"]
    assert {e.source.split(" ")[2] for e in loader.errors if e.source.startswith("entry point")} == {
        "missing", "not_an_agent",
    }
    assert any("not a directory" in e.error for e in loader.errors)
    assert loader.metadata()[0].capabilities == ("packaged",)
