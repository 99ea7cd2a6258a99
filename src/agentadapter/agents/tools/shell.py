"""``shell``: the computer tool, a model's way to run programs, inside the sandbox.

:class:`Shell` holds the policy (:class:`~agentadapter.agents.tools.sandbox.SandboxPolicy`), the
workspaces and the audit sink; :meth:`Shell.as_tool` is the tool an agent gets. Each agent run gets
a fresh, empty working directory the first time its model runs a command, kept for the rest of the
run (``workspace="call"``: a fresh one for every command) and removed when the shell evicts it or
closes. Commands of one run are run one at a time, like in a terminal. Every command asked for
leaves a :class:`~agentadapter.agents.tools.audit.ToolAuditRecord`: who (agent, run), what (the
command line and argv), the exit code, the duration, the output (truncated) and the sandbox's
isolation; refused and killed commands too. A refused or killed command reaches the model as an
error result saying why; a command that ran returns its exit code and output, with truncation and
anything the host could not enforce stated.

The built-in ``shell`` (``tools: [shell]`` in a spec) is ``Shell()`` with the default policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentadapter.agents.context import AgentContext
from agentadapter.agents.tools._text import decode_head, truncation_note
from agentadapter.agents.tools.audit import ToolAudit, ToolAuditRecord, caller_of, default_tool_audit, write_audit
from agentadapter.agents.tools.decorator import FunctionTool
from agentadapter.agents.tools.errors import CommandKilled, CommandRefused
from agentadapter.agents.tools.sandbox import (
    Isolation,
    ProcessOutcome,
    SandboxPolicy,
    check_command,
    kill_uid,
    probe_isolation,
    resolve_programs,
    run_sandboxed,
    split_command,
)
from agentadapter.agents.tools.sandbox_uids import UidLease, UidLeases
from agentadapter.observability.logging import get_logger

__all__ = ["CommandResult", "Shell", "shell"]

logger = get_logger("agentadapter.tools.shell")

_AUDIT_OUTPUT_CHARS = 4000


@dataclass(slots=True)
class CommandResult:
    """What a command that ran sends back to the model."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: float
    notes: list[str] = field(default_factory=list)
    """Truncation, links removed, isolation the host could not provide."""
    sandbox: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "stdout": self.stdout, "stderr": self.stderr,
                "duration_ms": round(self.duration_ms, 1), "notes": list(self.notes), "sandbox": dict(self.sandbox)}


@dataclass(eq=False)
class _Workspace:
    """A working directory, and the sandbox uid it holds (None: commands run as this process's user)."""

    key: str
    path: str
    lease: UidLease | None
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary)

    @property
    def uid(self) -> int | None:
        return self.lease.uid if self.lease is not None else None

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self.locks.get(loop)
        if lock is None:
            lock = self.locks[loop] = asyncio.Lock()
        return lock


def _remove_root(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Shell:
    """The sandboxed shell tool: a policy, per-run working directories, and an audit trail."""

    def __init__(
        self,
        policy: SandboxPolicy | None = None,
        *,
        audit: ToolAudit | None = None,
        workspace: Literal["run", "call"] = "run",
        root: str | None = None,
        max_workspaces: int = 32,
        name: str = "shell",
    ) -> None:
        self.policy = policy or SandboxPolicy()
        self.audit: ToolAudit = audit if audit is not None else default_tool_audit()
        self.workspace_mode = workspace
        self.name = name
        self.max_workspaces = max_workspaces
        self.programs, self.missing_programs = resolve_programs(self.policy.programs)
        """Allowed programs found on this host (name -> absolute path), and those that were not."""
        self._root_parent = root
        self._root: str | None = None
        self._workspaces: dict[str, _Workspace] = {}
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize[[str], Shell] | None = None

    # ------------------------------------------------------------------------------ the tool

    def as_tool(self, *, name: str | None = None) -> FunctionTool:
        """The tool an agent gets: ``shell(command, stdin="")``."""
        runner = self

        async def shell(context: AgentContext, command: str, stdin: str = "") -> dict[str, Any]:
            """Run one program with arguments in a sandbox.

            Args:
                command: The program and its arguments, quoted as in a POSIX shell, e.g. `grep -n "a b" notes.txt`.
                stdin: Text given to the program on its standard input.
            """
            result = await runner.run(command, stdin=stdin, context=context)
            return result.to_dict()

        return FunctionTool.wrap(shell, name=name or self.name, description=self.description(),
                                 timeout=self.policy.wall_time_s + 15.0)

    def description(self) -> str:
        programs = ", ".join(sorted(self.programs)) or "none"
        network = ("The network is reachable." if self.policy.allow_network
                   else "There is no network access where the host allows blocking it.")
        scope = ("starts empty for this run and is kept between your calls" if self.workspace_mode == "run"
                 else "is fresh and empty for every call")
        return (
            "Run one program with arguments in a sandbox and get its exit code and output. There is no shell: "
            "no pipes, redirections, globbing, variables, ';' or '&&'; quote arguments as in a POSIX shell. "
            f"Allowed programs: {programs}. The working directory {scope}; use paths relative to it "
            "(absolute paths, '..' and symlinks leading out are refused). Each program accepts its common "
            "options only, long ones in full (a refusal lists them). "
            f"Limits: {self.policy.limits_text()}. {network}"
        )

    # ------------------------------------------------------------------------------ running

    async def run(self, command: str, *, stdin: str = "", context: AgentContext | None = None) -> CommandResult:
        """Run a command line for ``context``'s run. Refused and killed commands raise
        (:class:`CommandRefused`, :class:`CommandKilled`); every command is audited."""
        agent, run_id = caller_of(context)
        record = ToolAuditRecord(self.name, command, "refused", agent=agent, run_id=run_id)
        started = time.monotonic()
        try:
            argv = split_command(command)
            record.details["argv"] = argv
            data = stdin.encode("utf-8") if stdin else None
            if data is not None and len(data) > self.policy.max_stdin_bytes:
                raise CommandRefused(f"stdin is {len(data)} bytes; the limit is {self.policy.max_stdin_bytes}",
                                     reason="too_long")
            isolation = await self._isolation()
            workspace = await self._acquire(run_id)
            try:
                async with workspace.lock():
                    resolved = check_command(argv, self.programs, self.policy, workspace.path)
                    # Links leading out deeper in the tree, put in since the last command (prepare()
                    # then a caller's files), go before it runs: grep -R, cp -rL, diff -r follow them.
                    removed = _remove_escaping_links(workspace.path)
                    record.details["program"] = resolved[0]
                    isolation = Isolation(isolation.network_isolated, workspace.uid, isolation.notes)
                    record.details["sandbox"] = isolation.to_dict()
                    outcome = await run_sandboxed(resolved, cwd=workspace.path, policy=self.policy,
                                                  isolation=isolation, stdin=data)
                    removed += _remove_escaping_links(workspace.path)
            finally:
                await self._release(workspace)
        except CommandRefused as refusal:
            record.reason, record.duration_ms = refusal.reason, (time.monotonic() - started) * 1000.0
            record.output = refusal.message
            await write_audit(self.audit, record)
            raise
        except BaseException as exc:  # cancelled, or a bug: still leave a trace
            record.outcome, record.reason = "error", type(exc).__name__
            record.duration_ms = (time.monotonic() - started) * 1000.0
            await write_audit(self.audit, record)
            raise
        result = self._result(outcome, isolation, removed)
        killed = outcome.killed or _killed_by_limit(outcome.exit_code)
        record.outcome = "killed" if killed else "ok"
        record.reason = killed or ""
        record.exit_code, record.duration_ms = outcome.exit_code, outcome.duration_s * 1000.0
        record.output = _audit_output(result)
        record.details["stdout_bytes"], record.details["stderr_bytes"] = outcome.stdout_bytes, outcome.stderr_bytes
        await write_audit(self.audit, record)
        if killed:
            raise CommandKilled(self._killed_message(killed, outcome, result), reason=killed)
        return result

    def _result(self, outcome: ProcessOutcome, isolation: Isolation, removed: list[str]) -> CommandResult:
        notes: list[str] = []
        stdout = decode_head(outcome.stdout, outcome.stdout_bytes > len(outcome.stdout))
        stderr = decode_head(outcome.stderr, outcome.stderr_bytes > len(outcome.stderr))
        if outcome.stdout_bytes > len(outcome.stdout):
            notes.append(truncation_note("stdout", len(outcome.stdout), outcome.stdout_bytes, "bytes"))
        if outcome.stderr_bytes > len(outcome.stderr):
            notes.append(truncation_note("stderr", len(outcome.stderr), outcome.stderr_bytes, "bytes"))
        notes += [f"removed the symlink {link!r}: links leading out of the working directory are not allowed"
                  for link in removed]
        notes += list(isolation.notes)
        if outcome.exit_code not in (0, None):
            notes.append(f"limits in force: {self.policy.limits_text()}")
        return CommandResult(outcome.exit_code, stdout, stderr, outcome.duration_s * 1000.0, notes,
                             isolation.to_dict())

    def _killed_message(self, reason: str, outcome: ProcessOutcome, result: CommandResult) -> str:
        policy = self.policy
        why = {
            "wall_time": f"it ran longer than the wall-time limit of {policy.wall_time_s:g} s",
            "output": f"it printed more than {policy.kill_output_bytes} bytes (runaway output)",
            "cpu_time": f"it used more than {policy.cpu_time_s} s of CPU time",
            "file_size": f"it tried to write a file larger than {policy.max_file_bytes} bytes",
        }.get(reason, reason)
        shown = [f"{name}: {text!r}" for name, text in (("stdout", result.stdout), ("stderr", result.stderr)) if text]
        output = "; ".join(shown) or "no output"
        notes = " ".join(result.notes[:2])
        return (f"the command was killed after {outcome.duration_s:.1f} s because {why}; it and every process it "
                f"started were stopped. Output before that: {output}. {notes} Run something smaller or faster."
                ).strip()

    # ------------------------------------------------------------------------------ isolation

    async def _isolation(self) -> Isolation:
        notes: list[str] = []
        isolated = False
        if not self.policy.allow_network:
            ok, why = await probe_isolation("network")
            if ok:
                isolated = True
            elif self.policy.require_network_isolation:
                raise CommandRefused(
                    f"this host cannot cut commands off the network ({why}) and the policy requires it "
                    "(SandboxPolicy.require_network_isolation); no command can run here", reason="no_isolation",
                )
            else:
                notes.append(f"network not isolated on this host: {why}")
        return Isolation(isolated, None, tuple(notes))

    def _uid_leases(self) -> UidLeases | None:
        if os.geteuid() != 0 or self.policy.uid_range is None:
            return None
        return UidLeases.for_range(self.policy.uid_range, self.policy.uid_lock_dir)

    # ------------------------------------------------------------------------------ workspaces

    def _ensure_root(self) -> str:
        with self._lock:
            if self._root is None:
                root = tempfile.mkdtemp(prefix="agentadapter-shell-", dir=self._root_parent)
                Path(root).chmod(0o711)  # sandbox uids may enter their own directory, not list the others
                self._root = root
                self._finalizer = weakref.finalize(self, _remove_root, root)
            return self._root

    async def _acquire(self, run_id: str) -> _Workspace:
        # Outside an agent run (no run id) calls share one working directory, like a run's do.
        key = (run_id or "no-run") if self.workspace_mode == "run" else f"call-{os.urandom(6).hex()}"
        with self._lock:
            existing = self._workspaces.get(key)
            if existing is not None:
                existing.busy += 1
                existing.last_used = time.monotonic()
                return existing
        await self._evict()
        lease = await self._lease_uid()
        try:
            path = _make_directory(self._ensure_root(), lease.uid if lease is not None else None)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        workspace = _Workspace(key, path, lease, busy=1)
        with self._lock:
            raced = self._workspaces.get(key)
            if raced is None:
                self._workspaces[key] = workspace
                return workspace
            raced.busy += 1
        await self._discard(workspace)  # another call of the same run created it first
        return raced

    async def _lease_uid(self) -> UidLease | None:
        """A uid of the policy's range that no other process on this machine holds, held by the new
        workspace until it is discarded; None when commands run as this process's user."""
        leases = self._uid_leases()
        if leases is None:
            if os.geteuid() == 0 and not self.policy.allow_root:
                raise CommandRefused(
                    "commands would run as root, and the policy has no uid_range to drop to; set "
                    "SandboxPolicy(uid_range=...) (or allow_root=True, not recommended)", reason="root",
                )
            return None
        lease = await asyncio.to_thread(leases.acquire)  # a pass over /proc: off the event loop
        if lease is None:
            raise CommandRefused("every sandbox uid is in use by another workspace; try again shortly",
                                 reason="busy")
        ok, why = await probe_isolation("user", lease.uid)
        if not ok:
            lease.release()
            if not self.policy.allow_root:
                raise CommandRefused(
                    f"commands would run as root because dropping to an unprivileged uid failed ({why}); "
                    "give the sandbox a usable SandboxPolicy.uid_range", reason="root",
                )
            return None
        try:
            await kill_uid(lease.uid)  # a clean slate: nothing left over from a previous holder that died
        except BaseException:
            lease.release()
            raise
        return lease

    async def _release(self, workspace: _Workspace) -> None:
        with self._lock:
            workspace.busy -= 1
            workspace.last_used = time.monotonic()
            discard = self.workspace_mode == "call" and workspace.busy == 0
            if discard:
                self._workspaces.pop(workspace.key, None)
        if discard:
            await self._discard(workspace)

    async def _evict(self) -> None:
        with self._lock:
            idle = sorted((w for w in self._workspaces.values() if w.busy == 0), key=lambda w: w.last_used)
            excess = len(self._workspaces) - self.max_workspaces + 1
            victims = idle[:max(excess, 0)]
            for victim in victims:
                self._workspaces.pop(victim.key, None)
        for victim in victims:
            await self._discard(victim)

    async def _discard(self, workspace: _Workspace) -> None:
        lease = workspace.lease
        try:
            if lease is not None:
                await kill_uid(lease.uid)  # only this workspace's processes: the uid is leased to it
            await asyncio.to_thread(shutil.rmtree, workspace.path, True)
        finally:
            if lease is not None:
                lease.release()  # after the kill: the next holder starts with nothing running

    def workspace_path(self, run_id: str) -> str | None:
        """The working directory of a run, if it has one (to put inputs in or collect results)."""
        with self._lock:
            workspace = self._workspaces.get(run_id)
            return workspace.path if workspace is not None else None

    async def prepare(self, run_id: str) -> str:
        """Create (or find) a run's working directory before its agent runs, e.g. to put files in it.
        Files you add should be readable by the sandbox: they are chowned to its uid."""
        workspace = await self._acquire(run_id)
        await self._release(workspace)
        return workspace.path

    async def close_run(self, run_id: str) -> None:
        """Remove a run's working directory (and stop anything left of its commands)."""
        with self._lock:
            workspace = self._workspaces.get(run_id)
            if workspace is None or workspace.busy:
                return
            self._workspaces.pop(run_id, None)
        await self._discard(workspace)

    async def close(self) -> None:
        """Remove every working directory this shell created."""
        with self._lock:
            workspaces = list(self._workspaces.values())
            self._workspaces.clear()
            root, self._root = self._root, None
        for workspace in workspaces:
            await self._discard(workspace)
        if root is not None:
            await asyncio.to_thread(shutil.rmtree, root, True)
        if self._finalizer is not None:
            self._finalizer.detach()


def _killed_by_limit(exit_code: int | None) -> str | None:
    if exit_code == -signal.SIGXCPU:
        return "cpu_time"
    if exit_code == -signal.SIGXFSZ:
        return "file_size"
    return None


def _audit_output(result: CommandResult) -> str:
    text = result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")
    if len(text) > _AUDIT_OUTPUT_CHARS:
        text = text[:_AUDIT_OUTPUT_CHARS] + "\n" + truncation_note("output", _AUDIT_OUTPUT_CHARS, len(text))
    return text


def _make_directory(root: str, uid: int | None) -> str:
    """A new private working directory under ``root``, owned by ``uid`` when given."""
    path = Path(tempfile.mkdtemp(prefix="ws-", dir=root))
    if uid is not None:
        os.chown(path, uid, uid)
    path.chmod(0o700)
    return str(path.resolve())


def _remove_escaping_links(root: str, limit: int = 10_000) -> list[str]:
    """Delete symlinks under ``root`` that resolve outside it; their paths relative to ``root``."""
    base = Path(root)
    removed: list[str] = []
    seen = 0
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            seen += 1
            if seen > limit:
                return removed
            path = Path(directory) / name
            if path.is_symlink() and not path.resolve().is_relative_to(base):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(str(path.relative_to(base)))
    return removed


shell = Shell().as_tool()
"""The built-in ``shell`` tool: the default policy, per-run working directories, the default audit."""
