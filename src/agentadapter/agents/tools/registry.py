"""``ToolRegistry``: tools by name, so agents defined as data (YAML, the API) can name their tools.

An agent spec says ``tools: [web_search, lookup_order]``; the factory looks each name up here. The
default registry (:func:`default_registry`) holds the built-in tools, declared by import path in
:data:`BUILTIN_TOOLS` and imported on first use so that importing the agent layer stays light, and
the tools that packages publish under the ``agentadapter.tools`` entry point group. Register your
own with :meth:`ToolRegistry.register` or the :meth:`ToolRegistry.tool` decorator.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any, overload

from agentadapter.agents.tools.decorator import FunctionTool
from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.tools import Tool

__all__ = ["BUILTIN_TOOLS", "ENTRY_POINT_GROUP", "ToolRegistry", "default_registry"]

ENTRY_POINT_GROUP = "agentadapter.tools"

BUILTIN_TOOLS: dict[str, str] = {
    "http_fetch": "agentadapter.agents.tools.http_fetch:http_fetch",
    "shell": "agentadapter.agents.tools.shell:shell",
    "web_search": "agentadapter.agents.tools.web_search:web_search",
}
"""Built-in tools by name -> ``"module:attribute"`` (a Tool, a @tool, or a plain function).

They are imported only when an agent asks for them by name. MCP tools are not here: they come from
the servers you configure (``MCPServer(...).tools()`` or ``.register(registry)``).
"""


def _origin(tool: Tool) -> str | None:
    function = tool.function
    if function is None:
        return None
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


class ToolRegistry:
    """Named tools. Thread-safe; lookups of lazily declared tools import them once."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = (), *, lazy: dict[str, str] | None = None,
                 entry_points: bool = False) -> None:
        self._tools: dict[str, Tool] = {}
        self._lazy: dict[str, str] = dict(lazy or {})
        self._entry_points = entry_points
        self._entry_points_loaded = False
        self._lock = threading.RLock()
        for item in tools:
            self.register(item)

    def register(self, tool: Tool | Callable[..., Any], *, name: str | None = None, replace: bool = False) -> Tool:
        """Add a tool (a Tool, a @tool, or a plain function) under its name, or ``name``.

        A name already taken by another tool is refused unless ``replace=True``; registering the same
        function again (a reloaded module) replaces it quietly.
        """
        built = tool if isinstance(tool, Tool) else FunctionTool.wrap(tool, name=name)
        key = name or built.name
        with self._lock:
            existing = self._tools.get(key)
            reloaded = existing is not None and _origin(existing) is not None and _origin(existing) == _origin(built)
            if existing is not None and not replace and existing is not built and not reloaded:
                raise ConfigurationError(
                    f"a tool named {key!r} is already registered ({_origin(existing) or 'a schema-only tool'}); "
                    "pick another name, or pass replace=True"
                )
            self._tools[key] = built
            self._lazy.pop(key, None)
        return built

    def register_lazy(self, name: str, target: str) -> None:
        """Declare a tool by import path (``"package.module:attribute"``), imported on first lookup."""
        if ":" not in target:
            raise ConfigurationError(f"lazy tool {name!r}: the target must be 'module:attribute', not {target!r}")
        with self._lock:
            self._lazy[name] = target

    @overload
    def tool(self, function: Callable[..., Any], /) -> FunctionTool: ...

    @overload
    def tool(self, function: None = None, /, *, name: str | None = None, timeout: float | None = None,
             needs_approval: bool | Callable[[dict[str, Any]], bool] = False,
             description: str | None = None) -> Callable[[Callable[..., Any]], FunctionTool]: ...

    def tool(
        self, function: Callable[..., Any] | None = None, /, *, name: str | None = None, timeout: float | None = None,
        needs_approval: bool | Callable[[dict[str, Any]], bool] = False, description: str | None = None,
    ) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
        """``@registry.tool`` / ``@registry.tool(...)``: ``@tool`` that also registers the result."""

        def decorate(fn: Callable[..., Any]) -> FunctionTool:
            built = FunctionTool.wrap(fn, name=name, description=description, timeout=timeout,
                                      needs_approval=needs_approval)
            self.register(built)
            return built

        return decorate(function) if function is not None else decorate

    def unregister(self, name: str) -> None:
        with self._lock:
            self._tools.pop(name, None)
            self._lazy.pop(name, None)

    def get(self, name: str) -> Tool:
        """The tool registered as ``name``; a clear error naming the known tools otherwise."""
        found = self._tools.get(name)
        if found is not None:
            return found
        with self._lock:
            if name in self._tools:
                return self._tools[name]
            if name not in self._lazy:
                self._load_entry_points()
            target = self._lazy.get(name)
            if target is None:
                known = ", ".join(self.names()) or "none"
                raise ConfigurationError(
                    f"no tool named {name!r} is registered (known: {known}); register it with "
                    "default_registry().register(fn) or @registry.tool, or publish it under the "
                    f"{ENTRY_POINT_GROUP!r} entry point group"
                )
            loaded = self._import(name, target)
            self._tools[name] = loaded
            self._lazy.pop(name, None)
            return loaded

    def resolve(self, names: Iterable[str]) -> list[Tool]:
        return [self.get(name) for name in names]

    def names(self) -> list[str]:
        """Every tool name known, loaded or not, sorted."""
        return sorted({*self._tools, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._tools or name in self._lazy)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def _load_entry_points(self) -> None:
        if not self._entry_points or self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            self._lazy.setdefault(entry_point.name, entry_point.value)

    @staticmethod
    def _import(name: str, target: str) -> Tool:
        module_name, _, attribute = target.partition(":")
        try:
            value: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                value = getattr(value, part)
        except Exception as exc:
            raise ConfigurationError(
                f"tool {name!r} is declared as {target!r} but cannot be imported ({type(exc).__name__}: {exc}); "
                "check that its package is installed"
            ) from exc
        if isinstance(value, Tool):
            return value
        if callable(value):
            return FunctionTool.wrap(value, name=name)
        raise ConfigurationError(f"tool {name!r} ({target}) is a {type(value).__name__}, not a tool or function")


_DEFAULT: ToolRegistry | None = None
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> ToolRegistry:
    """The process-wide registry: built-in tools, entry-point tools, and whatever you register."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            from agentadapter.config import get_settings

            lazy = dict(BUILTIN_TOOLS)
            if get_settings().code_tool:  # code execution: off unless the operator enables it
                lazy["run_python"] = "agentadapter.agents.tools.code:run_python"
            _DEFAULT = ToolRegistry(lazy=lazy, entry_points=True)
        return _DEFAULT
