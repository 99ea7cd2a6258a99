"""``AgentLoader``: find agents in a directory of Python modules and in installed packages.

The seeds' dynamic loading: every ``*.py`` module of the given directories (files starting with
``_`` are skipped) and every entry point of the ``agentadapter.agents`` group is imported; the
``BaseAgent`` subclasses defined there (and ``BaseAgent`` instances, e.g. an ``LLMAgent`` declared at
module level) are validated and their metadata (name, type, capabilities, description) extracted.
A module that fails to import, or an agent that fails validation, is reported with its traceback in
:attr:`AgentLoader.errors` and the others still load. Agents are instantiated on demand
(:meth:`AgentLoader.create`). In development mode (``AGENTADAPTER_ENV=development``, the default) a
module whose file changed is re-imported before its agents are handed out; if the new version is
broken, the error is reported and the last good version stays in use. :meth:`AgentLoader.refresh`
(called on every lookup in development mode, and in any mode when a name is not found) also loads
files added to the directories since, and retries files that failed to load once they change, so an
agent fixed after a broken first load appears without a restart.
:meth:`AgentLoader.register_types` makes every loaded agent a type workflow files name
(``type: <agent name>``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import sys
import threading
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from agentadapter.agents.base import AgentMetadata, BaseAgent
from agentadapter.config import get_settings
from agentadapter.llm.errors import ConfigurationError

__all__ = ["ENTRY_POINT_GROUP", "AgentLoader", "LoadError", "LoadedAgent"]

ENTRY_POINT_GROUP = "agentadapter.agents"
logger = logging.getLogger("agentadapter.agents.loader")


@dataclass(slots=True)
class LoadError:
    """A module or agent that could not be loaded, and why."""

    source: str
    """The file path, or ``entry point <name>``."""
    error: str
    traceback: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "error": self.error, "traceback": self.traceback}


@dataclass(slots=True)
class LoadedAgent:
    """An agent found by the loader: its class (or instance), metadata, and where it came from."""

    metadata: AgentMetadata
    source: str
    cls: type[BaseAgent] | None = None
    instance: BaseAgent | None = None
    """Set for agents declared as instances (``researcher = LLMAgent(...)``)."""

    def create(self, **params: Any) -> BaseAgent:
        if self.instance is not None:
            if params:
                raise ConfigurationError(
                    f"agent {self.metadata.name!r} is declared as an instance in {self.source}; it takes no params"
                )
            return self.instance
        assert self.cls is not None
        try:
            return self.cls(**params)
        except TypeError as exc:
            raise ConfigurationError(
                f"agent {self.metadata.name!r} ({self.metadata.qualname} in {self.source}) cannot be created "
                f"with {sorted(params) or 'no arguments'}: {exc}"
            ) from exc


@dataclass(slots=True)
class _Module:
    path: Path
    name: str
    stamp: tuple[int, int]
    agents: list[str] = field(default_factory=list)


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _module_name(path: Path) -> str:
    # Stable per file (a reload replaces the same sys.modules entry) and unique across directories.
    digest = hashlib.sha1(str(path.resolve().parent).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() or c == "_" else "_" for c in path.stem)
    return f"agentadapter_loaded_{digest}.{stem}"


def validate_agent_class(cls: type[BaseAgent]) -> None:
    """Refuse an agent class that cannot work: raises ConfigurationError saying what to fix."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ()))) or "?"
        raise ConfigurationError(f"agent class {where} is abstract (implement {missing})")
    if not inspect.iscoroutinefunction(cls.execute):
        raise ConfigurationError(f"agent class {where}: execute must be 'async def execute(self, context)'")
    capabilities = cls.CAPABILITIES
    if isinstance(capabilities, str) or not all(isinstance(c, str) for c in capabilities):
        raise ConfigurationError(f"agent class {where}: CAPABILITIES must be a list or tuple of strings")
    if not isinstance(cls.agent_type, str) or not cls.agent_type:
        raise ConfigurationError(f"agent class {where}: agent_type must be a non-empty string")


def _instance_metadata(agent: BaseAgent, module: str) -> AgentMetadata:
    return AgentMetadata(
        name=agent.name, agent_type=agent.agent_type, capabilities=tuple(agent.capabilities),
        description=agent.description, module=module, qualname=type(agent).__qualname__,
    )


class AgentLoader:
    """Discovers agents in directories and entry points; instantiates them on demand."""

    def __init__(
        self, paths: str | Path | Iterable[str | Path] = (), *, entry_points: bool = True,
        development: bool | None = None
    ) -> None:
        # One directory may be given as it is: a str is iterable too, and would read as one-letter paths.
        self.paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        self.use_entry_points = entry_points
        self.development = get_settings().env == "development" if development is None else development
        self.errors: list[LoadError] = []
        self._agents: dict[str, LoadedAgent] = {}
        self._modules: dict[Path, _Module] = {}
        self._failed: dict[Path, tuple[int, int]] = {}
        self._registered: set[str] = set()
        """Files that failed to load, with their stamp then: retried once they change."""
        self._lock = threading.RLock()
        self._loaded = False

    # ------------------------------------------------------------------------------ discovery

    def load(self) -> AgentLoader:
        """Scan every path and entry point (again); returns self. Errors go to :attr:`errors`."""
        with self._lock:
            self.errors = []
            self._agents = {}
            self._modules = {}
            self._failed = {}
            for directory in self.paths:
                if not directory.is_dir():
                    self.errors.append(LoadError(str(directory), "not a directory", ""))
                    continue
                for path in sorted(directory.glob("*.py")):
                    if not path.name.startswith("_"):
                        self._load_file(path.resolve())
            if self.use_entry_points:
                self._load_entry_points()
            self._loaded = True
        for error in self.errors:
            logger.warning("agent loader: %s: %s", error.source, error.error)
        return self

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def _load_file(self, path: Path) -> bool:
        name = _module_name(path)
        stamp: tuple[int, int] | None = None
        try:
            stamp = _stamp(path)
            module = self._import_file(path, name)
        except Exception as exc:
            self.errors.append(LoadError(str(path), f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            if stamp is not None:
                self._failed[path] = stamp
            return False
        self._failed.pop(path, None)
        self.errors = [e for e in self.errors if e.source != str(path)]  # an earlier failure is fixed
        record = _Module(path, name, stamp)
        self._modules[path] = record
        self._collect(module, str(path), record)
        return True

    @staticmethod
    def _import_file(path: Path, name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        package = name.rsplit(".", 1)[0]
        if package not in sys.modules:
            # A namespace parent so that the dotted name (and pickling, dataclasses) work.
            parent = ModuleType(package)
            parent.__path__ = []
            sys.modules[package] = parent
        module = importlib.util.module_from_spec(spec)
        previous = sys.modules.get(name)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            if previous is not None:
                sys.modules[name] = previous
            else:
                sys.modules.pop(name, None)
            raise
        return module

    def _collect(self, module: ModuleType, source: str, record: _Module | None) -> None:
        for attribute, value in list(vars(module).items()):
            if attribute.startswith("_"):
                continue
            try:
                found = self._found(value, module.__name__, source)
            except Exception as exc:
                self.errors.append(LoadError(f"{source}:{attribute}", str(exc), traceback.format_exc()))
                continue
            if found is None:
                continue
            name = found.metadata.name
            existing = self._agents.get(name)
            if existing is not None and found.instance is not None and existing.instance is found.instance:
                continue  # the same agent object, imported into another module
            if existing is not None and existing.source != source:
                self.errors.append(LoadError(
                    f"{source}:{attribute}",
                    f"agent name {name!r} is already taken by {existing.metadata.qualname} in {existing.source}; "
                    "set a different name",
                    "",
                ))
                continue
            self._agents[name] = found
            if record is not None:
                record.agents.append(name)

    @staticmethod
    def _found(value: Any, module_name: str, source: str) -> LoadedAgent | None:
        if isinstance(value, type) and issubclass(value, BaseAgent):
            if value.__module__ != module_name or inspect.isabstract(value):
                return None  # imported from elsewhere, or a base class meant to be extended
            validate_agent_class(value)
            return LoadedAgent(value.metadata(), source, cls=value)
        if isinstance(value, BaseAgent):
            return LoadedAgent(_instance_metadata(value, module_name), source, instance=value)
        return None

    def _load_entry_points(self) -> None:
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            source = f"entry point {entry_point.name} ({entry_point.value})"
            try:
                value = entry_point.load()
                found = self._found(value, getattr(value, "__module__", ""), source)
                if found is None and isinstance(value, type) and issubclass(value, BaseAgent):
                    validate_agent_class(value)
                    found = LoadedAgent(value.metadata(), source, cls=value)
                if found is None:
                    raise ConfigurationError(f"{entry_point.value} is not a BaseAgent subclass or instance")
            except Exception as exc:
                self.errors.append(LoadError(source, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                continue
            self._agents.setdefault(found.metadata.name, found)

    # ---------------------------------------------------------------------------- reloading

    def reload_changed(self) -> list[str]:
        """Re-import the modules whose files changed; returns their paths. A broken one keeps its old agents."""
        reloaded: list[str] = []
        with self._lock:
            for path, record in list(self._modules.items()):
                try:
                    stamp = _stamp(path)
                except OSError:
                    continue  # deleted: keep what was loaded
                if stamp == record.stamp:
                    continue
                record.stamp = stamp  # a broken version is reported once, not on every lookup
                try:
                    module = self._import_file(path, record.name)
                except Exception as exc:
                    self.errors.append(LoadError(str(path), f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                    logger.warning("agent loader: reloading %s failed; keeping the previous version: %s", path, exc)
                    continue
                for name in record.agents:
                    self._agents.pop(name, None)
                record.agents = []
                self._collect(module, str(path), record)
                reloaded.append(str(path))
        return reloaded

    def load_new(self) -> list[str]:
        """Load the directories' files that are new since the last scan, and retry the ones that failed to load
        if they changed since; returns the paths that loaded now."""
        loaded: list[str] = []
        with self._lock:
            for directory in self.paths:
                if not directory.is_dir():
                    continue
                for path in sorted(directory.glob("*.py")):
                    path = path.resolve()
                    if path.name.startswith("_") or path in self._modules:
                        continue
                    try:
                        stamp = _stamp(path)
                    except OSError:
                        continue
                    if self._failed.get(path) == stamp:
                        continue  # still the broken version: reported once already
                    if self._load_file(path):
                        loaded.append(str(path))
        return loaded

    def refresh(self) -> list[str]:
        """Changed modules re-imported, new and fixed files loaded; returns the paths that (re)loaded."""
        self._ensure_loaded()
        return [*self.reload_changed(), *self.load_new()]

    def register_types(self) -> list[str]:
        """Make each loaded agent an agent type (``type: <name>`` in a workflow file or agent spec builds it,
        with the spec's ``params``); returns the names registered. Built-in type names are left alone."""
        from agentadapter.agents.factory import AgentSpec, agent_types, register_agent_type

        builtin = set(agent_types()) - set(self._registered)
        registered: list[str] = []
        for name in self.names():
            if name in builtin:
                continue

            def build(spec: AgentSpec, _name: str = name) -> BaseAgent:
                agent = self.create(_name, **dict(spec.params))
                if agent.name != spec.name and self.get(_name).instance is None:
                    agent.name = spec.name
                return agent

            register_agent_type(name, build)
            self._registered.add(name)
            registered.append(name)
        return registered

    # -------------------------------------------------------------------------------- lookups

    def names(self) -> list[str]:
        self._ensure_loaded()
        if self.development:
            self.refresh()
        return sorted(self._agents)

    def metadata(self) -> list[AgentMetadata]:
        """Metadata of every agent found, by name (in development mode, after a :meth:`refresh`)."""
        self._ensure_loaded()
        if self.development:
            self.refresh()
        return [self._agents[name].metadata for name in sorted(self._agents)]

    def sources(self) -> dict[str, str]:
        """Where each agent was found (a file path, or ``entry point <name> (...)``), by name."""
        self._ensure_loaded()
        return {name: found.source for name, found in sorted(self._agents.items())}

    def get(self, name: str) -> LoadedAgent:
        """The agent found under ``name`` (its agent name, or its class name)."""
        self._ensure_loaded()
        if self.development:
            self.refresh()
        found = self._find(name)
        if found is None and not self.development and self.load_new():
            found = self._find(name)  # a file added (or fixed) since the last scan
        if found is None:
            broken = [e.source for e in self.errors]
            hint = f"; these failed to load: {', '.join(broken)}" if broken else ""
            raise ConfigurationError(
                f"no agent named {name!r} was found (known: {', '.join(sorted(self._agents)) or 'none'}){hint}"
            )
        return found

    def _find(self, name: str) -> LoadedAgent | None:
        return self._agents.get(name) or next(
            (a for a in self._agents.values() if a.cls is not None and a.cls.__name__ == name), None
        )

    def create(self, name: str, **params: Any) -> BaseAgent:
        """A new instance of agent ``name`` (a module-level instance is returned as it is)."""
        return self.get(name).create(**params)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return isinstance(name, str) and name in self._agents

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._agents)

    @classmethod
    def scan(cls, paths: Sequence[str | Path], **options: Any) -> AgentLoader:
        """Build a loader and load at once."""
        return cls(paths, **options).load()
