"""``@tool`` and :class:`FunctionTool`: Python functions as tools an agent's model may call.

A :class:`FunctionTool` is the adapter's :class:`~agentadapter.llm.tools.Tool` (name, description,
JSON schema built from the type hints and the docstring, argument validation with pydantic) plus
what only an agent needs: whether a call needs a human's approval, and whether the function takes
the :class:`~agentadapter.agents.context.AgentContext` as its first parameter (that parameter is
left out of the schema and filled in at call time, so a tool can reach the run's shared state,
messaging and ``deps``). ``@tool`` works with or without parentheses, on sync and async functions;
sync functions run in a worker thread so they never block the event loop. The decorated name stays
callable as the plain function.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast, get_type_hints, overload

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.tools import Tool, coerce_tool

if TYPE_CHECKING:
    from agentadapter.agents.context import AgentContext
    from agentadapter.agents.tools.registry import ToolRegistry

__all__ = ["FunctionTool", "coerce_agent_tool", "tool"]





def _context_parameter(function: Callable[..., Any]) -> str | None:
    """The name of a first parameter annotated as ``AgentContext`` (or a subclass), if any."""
    from agentadapter.agents.context import AgentContext

    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return None
    if not parameters:
        return None
    first = parameters[0]
    annotation = first.annotation
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        try:
            annotation = get_type_hints(function).get(first.name, annotation)
        except Exception:
            # An unresolvable hint elsewhere: judge by the written name alone.
            return first.name if annotation.rsplit(".", 1)[-1] == "AgentContext" else None
    if isinstance(annotation, type) and issubclass(annotation, AgentContext):
        return first.name
    return None


def _without_parameter(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A stand-in with ``function``'s signature, hints and docstring minus one parameter (schema only)."""
    signature = inspect.signature(function)
    hints = get_type_hints(function)

    def stand_in(**kwargs: Any) -> Any:  # never called: only its signature is read
        raise NotImplementedError

    stand_in.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name != name]
    )
    stand_in.__annotations__ = {k: v for k, v in hints.items() if k != name}
    stand_in.__doc__ = function.__doc__
    stand_in.__name__ = getattr(function, "__name__", "tool")
    return stand_in


@dataclass(slots=True)
class FunctionTool(Tool):
    """A tool an agent can run: a function, its schema, its timeout, and its approval rule."""

    needs_approval: bool | Callable[[dict[str, Any]], bool] = False
    """Whether a call must be approved by a human before it runs (or a rule on its arguments)."""
    takes_context: bool = False
    """The function's first parameter is the ``AgentContext`` (not part of the schema)."""

    @classmethod
    def wrap(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        needs_approval: bool | Callable[[dict[str, Any]], bool] = False,
        strict: bool | None = None,
    ) -> FunctionTool:
        """Build a tool from a function's signature, type hints and docstring."""
        if not callable(function):
            raise InvalidRequestError(f"@tool needs a function, got {type(function).__name__}")
        if timeout is not None and timeout <= 0:
            raise InvalidRequestError(
                f"tool {name or function.__name__!r}: timeout must be a positive number of seconds"
            )
        context_name = _context_parameter(function)
        described = _without_parameter(function, context_name) if context_name else function
        base = Tool.from_function(
            described, name=name or getattr(function, "__name__", None), description=description,
            timeout=timeout, strict=strict,
        )
        return cls(
            name=base.name, description=base.description, parameters=base.parameters, strict=base.strict,
            function=function, timeout=base.timeout, arguments_model=base.arguments_model,
            needs_approval=needs_approval, takes_context=context_name is not None,
        )

    def requires_approval(self, arguments: dict[str, Any]) -> bool:
        """Whether this call (with these arguments) waits for a human."""
        rule = self.needs_approval
        return bool(rule(arguments)) if callable(rule) else bool(rule)

    async def invoke(self, arguments: Mapping[str, Any], context: AgentContext | None = None) -> Any:
        """Validate the arguments and call the function (sync functions in a worker thread)."""
        function = self.function
        if function is None:
            raise InvalidRequestError(f"tool {self.name!r} has no Python function to call")
        kwargs = self.validate_arguments(arguments)
        args: tuple[Any, ...] = (context,) if self.takes_context else ()
        if inspect.iscoroutinefunction(function):
            return await cast(Callable[..., Awaitable[Any]], function)(*args, **kwargs)
        result = await asyncio.to_thread(function, *args, **kwargs)
        if inspect.isawaitable(result):  # e.g. a partial over an async function
            return await result
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly, as if it were not decorated."""
        if self.function is None:
            raise InvalidRequestError(f"tool {self.name!r} has no Python function to call")
        return self.function(*args, **kwargs)


@overload
def tool(function: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    needs_approval: bool | Callable[[dict[str, Any]], bool] = False,
    strict: bool | None = None,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    needs_approval: bool | Callable[[dict[str, Any]], bool] = False,
    strict: bool | None = None,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a function a tool: ``@tool`` or ``@tool(name=..., timeout=..., needs_approval=...)``.

    The schema comes from the type hints, the descriptions from the docstring (Google, NumPy or
    Sphinx style). A first parameter annotated ``AgentContext`` receives the run's context.
    """

    def decorate(fn: Callable[..., Any]) -> FunctionTool:
        return FunctionTool.wrap(
            fn, name=name, description=description, timeout=timeout, needs_approval=needs_approval, strict=strict
        )

    if function is not None:
        return decorate(function)
    return decorate


def coerce_agent_tool(value: Any, registry: ToolRegistry | None = None) -> Tool:
    """A tool from what an agent's ``tools=`` may hold: a Tool, a function, a registered name,
    an OpenAI-style dict (schema only: calls to it report an error), or an agent (used as a tool)."""
    from agentadapter.agents.base import BaseAgent

    if isinstance(value, Tool):
        return value
    if isinstance(value, str):
        if registry is None:
            from agentadapter.agents.tools.registry import default_registry

            registry = default_registry()
        return registry.get(value)
    if isinstance(value, BaseAgent):
        return value.as_tool()
    if isinstance(value, Mapping):
        return coerce_tool(value)
    if callable(value):
        return FunctionTool.wrap(value)
    raise InvalidRequestError(
        f"cannot use a {type(value).__name__} as a tool; pass a function, a @tool, a Tool, a registered "
        "tool name or an agent"
    )
