"""``run_python``: the code-execution tool, Python run in the shell sandbox's isolation.

:class:`PythonCode` is a :class:`~agentadapter.agents.tools.shell.Shell` whose allow-list holds one
entry, the host's ``python3`` (found on :data:`~agentadapter.agents.tools.sandbox.SAFE_PATH`), run as
``python3 -I -S -B -`` with the model's code on its standard input: isolated mode (no user site, no
``PYTHON*`` variables), no ``site`` (the standard library only - none of this process's packages),
no bytecode files. Every call gets a fresh, empty working directory, removed afterwards; the
sandbox's limits hold (wall time, CPU, memory, processes, file size, output), the environment is the
sandbox's fixed minimal one (no key or secret of this process reaches the code), and the network is
refused: the code runs in an empty network namespace, and where the host cannot make one the tool
refuses to run at all (``require_network_isolation``). Every call is audited like a shell command.

The tool is off unless the operator enables it: ``AGENTADAPTER_CODE_TOOL=true`` registers
``run_python`` in the default tool registry (agents name it in ``tools:``); a program registers
``PythonCode(...).as_tool()`` itself. Through the API it is then available to tenants' agents unless
listed in ``AGENTADAPTER_API_DENIED_TOOLS``.
"""

from __future__ import annotations

from typing import Any

from agentadapter.agents.context import AgentContext
from agentadapter.agents.tools.audit import ToolAudit
from agentadapter.agents.tools.decorator import FunctionTool
from agentadapter.agents.tools.sandbox import MiB, SandboxPolicy
from agentadapter.agents.tools.shell import CommandResult, Shell

__all__ = ["CODE_COMMAND", "PythonCode", "code_policy", "run_python"]

CODE_COMMAND = "python3 -I -S -B -"
"""The one command the tool runs; the code arrives on standard input."""


def code_policy(**limits: Any) -> SandboxPolicy:
    """The sandbox policy of the code tool: only ``python3`` with the flags above, tighter default limits, and
    no run without network isolation. ``limits`` overrides any :class:`SandboxPolicy` field (``wall_time_s``,
    ``memory_bytes``, ``max_output_bytes``, ...)."""
    values: dict[str, Any] = {
        "programs": ("python3",),
        "options": {"python3": "-I -S -B"},
        "wall_time_s": 20.0,
        "cpu_time_s": 10,
        "memory_bytes": 512 * MiB,
        "max_processes": 16,
        "max_file_bytes": 16 * MiB,
        "max_output_bytes": 16 * 1024,
        "max_stdin_bytes": 256 * 1024,
        "allow_network": False,
        "require_network_isolation": True,
    }
    values.update(limits)
    return SandboxPolicy(**values)


class PythonCode:
    """Runs Python code in the sandbox; one fresh working directory per call (module docstring)."""

    def __init__(
        self,
        policy: SandboxPolicy | None = None,
        *,
        audit: ToolAudit | None = None,
        root: str | None = None,
        name: str = "run_python",
    ) -> None:
        self.name = name
        self.shell = Shell(policy or code_policy(), audit=audit, workspace="call", root=root, name=name)

    @property
    def policy(self) -> SandboxPolicy:
        return self.shell.policy

    async def run(self, code: str, *, context: AgentContext | None = None) -> CommandResult:
        """Run ``code``; a refusal or a limit raises (CommandRefused, CommandKilled), as the shell's do."""
        return await self.shell.run(CODE_COMMAND, stdin=code, context=context)

    def as_tool(self, *, name: str | None = None) -> FunctionTool:
        """The tool an agent gets: ``run_python(code)`` -> exit code, stdout, stderr, notes."""
        runner = self

        async def run_python(context: AgentContext, code: str) -> dict[str, Any]:
            """Run a Python program and get its exit code and output.

            Args:
                code: The whole program; print what you want to see.
            """
            result = await runner.run(code, context=context)
            return result.to_dict()

        return FunctionTool.wrap(
            run_python, name=name or self.name, description=self.description(), timeout=self.policy.wall_time_s + 15.0
        )

    def description(self) -> str:
        return (
            "Run a Python 3 program (standard library only) and get its exit code, stdout and stderr. Each call "
            "starts in a fresh, empty working directory, with no network and no access to this service's "
            f"settings; print what you need to see. Limits: {self.policy.limits_text()}."
        )

    async def close(self) -> None:
        await self.shell.close()


run_python = PythonCode().as_tool()
"""The tool ``AGENTADAPTER_CODE_TOOL=true`` registers (the default policy)."""
