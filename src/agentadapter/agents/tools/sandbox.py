"""The shell sandbox: which commands may run, and running one inside OS limits.

:mod:`agentadapter.agents.tools.shell` is the tool a model calls; this module is the machinery
under it. A command line is split like a POSIX shell would split it (``shlex``) but never given to
a shell: :func:`split_command` refuses unquoted shell operators (``|``, ``>``, ``;``, ``&&``...)
rather than pass them on as words. :func:`check_command` refuses, before anything starts: a
program that is not on the allow-list (programs are looked up by bare name on a fixed ``PATH`` and
run by absolute path), a program given as a path, ``NAME=value`` environment assignments, any
option the program's allow-list does not hold (:mod:`~agentadapter.agents.tools.shell_options`:
parsed as the program will parse it, glued values and bundles included), and any path, as an
operand or an option's value, outside the working directory (absolute, ``~``, a ``..`` component,
or a path that resolves out through a symlink).

:func:`run_sandboxed` starts the program in a new session with a minimal fixed environment,
``RLIMIT_CPU`` / ``RLIMIT_AS`` / ``RLIMIT_NPROC`` / ``RLIMIT_FSIZE`` / ``RLIMIT_NOFILE`` limits, no
core dumps, ``PR_SET_NO_NEW_PRIVS`` (set-uid programs cannot gain privileges), and where the OS
allows it a new, empty network namespace (``unshare(CLONE_NEWNET)``). Run as root, each workspace
gets its own unprivileged uid from a reserved range, leased across the processes of the machine
(:mod:`~agentadapter.agents.tools.sandbox_uids`), so ``RLIMIT_NPROC`` applies (the kernel ignores
it for root) and every process of that uid, all of them this workspace's, can be killed at once. The wall-time limit,
the output limit and the end of the command kill the whole process group and every process of
the workspace's uid, so a fork bomb or a background child never outlives its command.
:func:`probe_isolation` finds out once per process what this host permits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agentadapter.agents.tools.errors import CommandRefused
from agentadapter.agents.tools.shell_options import DEFAULT_OPTIONS, NO_OPTIONS, ProgramOptions, check_arguments
from agentadapter.llm.errors import ConfigurationError
from agentadapter.observability.logging import get_logger

__all__ = [
    "DEFAULT_OPTIONS",
    "DEFAULT_PROGRAMS",
    "SAFE_PATH",
    "Isolation",
    "ProcessOutcome",
    "SandboxPolicy",
    "check_command",
    "kill_uid",
    "pids_of_uid",
    "probe_isolation",
    "resolve_programs",
    "run_sandboxed",
    "split_command",
    "uids_with_processes",
]

logger = get_logger("agentadapter.tools.sandbox")

MiB = 1024 * 1024

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
"""Where allowed programs are looked up, and the ``PATH`` commands see."""

DEFAULT_PROGRAMS: tuple[str, ...] = (
    "base64", "basename", "cat", "comm", "cp", "cut", "date", "diff", "dirname", "echo", "false", "fold",
    "grep", "head", "ls", "md5sum", "mkdir", "mv", "nl", "paste", "printf", "pwd", "rev", "rm", "rmdir", "seq",
    "sha256sum", "sort", "stat", "tac", "tail", "touch", "tr", "true", "uniq", "wc",
)
"""Programs that only touch the paths named in their arguments and cannot start other programs
(with the options :data:`DEFAULT_OPTIONS` lets them have). Shells, interpreters, ``env``,
``find``, ``xargs``, ``awk``, ``sed`` (its ``e`` command), ``tar`` and network clients are left
out on purpose: allow-listing one lets a command run anything the sandbox's user may run, within
the same limits."""

_OPERATOR_CHARS = frozenset("();<>|&")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_NO_NEW_PRIVS = 38


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """What the shell sandbox allows, and its limits. One object, shared by every command."""

    programs: tuple[str, ...] = DEFAULT_PROGRAMS
    """Allowed programs by bare name (looked up on :data:`SAFE_PATH`), or ``"name=/absolute/path"``."""
    options: Mapping[str, ProgramOptions | str] = field(default_factory=dict)
    """The options a program accepts, by program name, on top of :data:`DEFAULT_OPTIONS` (an entry
    replaces the default one): a :class:`ProgramOptions`, or its compact spec (``"-c= -e"``, see
    :meth:`ProgramOptions.parse`). An allowed program with no entry accepts no options."""
    wall_time_s: float = 30.0
    """Wall-clock seconds before the command and everything it started are killed."""
    cpu_time_s: int = 10
    """CPU seconds per process (``RLIMIT_CPU``; SIGXCPU, then SIGKILL one second later)."""
    memory_bytes: int = 512 * MiB
    """Address space per process (``RLIMIT_AS``): allocations beyond it fail."""
    max_processes: int = 64
    """Processes of the sandbox's user (``RLIMIT_NPROC``); enforced only when commands run under
    their own uid (as root) or as a non-root user."""
    max_file_bytes: int = 64 * MiB
    """Largest file a command may write (``RLIMIT_FSIZE``)."""
    max_open_files: int = 256
    max_output_bytes: int = 16 * 1024
    """Bytes of stdout and of stderr kept and shown to the model (the rest is counted, and the cut stated)."""
    kill_output_bytes: int = 4 * MiB
    """Total output (stdout + stderr) at which a runaway command is killed."""
    max_stdin_bytes: int = MiB
    max_command_chars: int = 32 * 1024
    allow_network: bool = False
    """Let commands use the network (no network namespace)."""
    require_network_isolation: bool = False
    """Refuse every command when this host cannot isolate the network (else: run, and say so)."""
    uid_range: tuple[int, int] | None = (1_900_000_000, 1_900_000_255)
    """Unprivileged uids (first, last) given to workspaces when running as root. ``None``: commands
    run as the current user."""
    uid_lock_dir: str | None = None
    """Where the lock files that lease those uids across processes live (see
    :mod:`~agentadapter.agents.tools.sandbox_uids`); every process sharing a uid_range must use the
    same one. ``None``: ``/run/agentadapter-sandbox``, or one in the temp dir."""
    allow_root: bool = False
    """Accept running commands as root when no unprivileged uid can be used (not recommended)."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Extra fixed environment variables (on top of PATH, HOME, TMPDIR, LANG, LC_ALL, TERM)."""

    def __post_init__(self) -> None:
        parsed = {name: spec if isinstance(spec, ProgramOptions) else ProgramOptions.parse(spec)
                  for name, spec in self.options.items()}
        object.__setattr__(self, "options", parsed)  # frozen: normalized once, here
        if self.wall_time_s <= 0 or self.cpu_time_s <= 0:
            raise ConfigurationError("SandboxPolicy: wall_time_s and cpu_time_s must be positive")
        if self.memory_bytes < 16 * MiB:
            raise ConfigurationError("SandboxPolicy: memory_bytes below 16 MiB cannot start most programs")
        if self.max_processes < 1 or self.max_output_bytes < 1 or self.kill_output_bytes < self.max_output_bytes:
            raise ConfigurationError(
                "SandboxPolicy: max_processes and max_output_bytes must be positive, and kill_output_bytes at "
                "least max_output_bytes"
            )
        if self.uid_range is not None:
            first, last = self.uid_range
            if first < 1000 or last < first:
                raise ConfigurationError(
                    f"SandboxPolicy: uid_range {self.uid_range} must be (first, last) with first >= 1000 (system "
                    "accounts live below), and should be reserved for the sandbox alone"
                )

    def options_of(self, program: str) -> ProgramOptions:
        """The options ``program`` accepts: its entry in :attr:`options`, else its default, else none."""
        entry = self.options.get(program)
        if isinstance(entry, ProgramOptions):  # always, once __post_init__ has parsed the specs
            return entry
        return DEFAULT_OPTIONS.get(program, NO_OPTIONS)

    def command_environment(self, workdir: str) -> dict[str, str]:
        env = {"PATH": SAFE_PATH, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "TERM": "dumb"}
        env.update(self.environment)
        return env

    def limits_text(self) -> str:
        return (f"{self.wall_time_s:g} s wall time, {self.cpu_time_s} s CPU, {self.memory_bytes // MiB} MiB memory, "
                f"{self.max_processes} processes, {self.max_output_bytes} bytes of output shown per stream")


# ------------------------------------------------------------------------------------------ checks


def resolve_programs(programs: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``({name: absolute path}, [names not found])`` for an allow-list."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for entry in programs:
        name, sep, path = entry.partition("=")
        name = name.strip()
        if not name or "/" in name:
            raise ConfigurationError(f"SandboxPolicy.programs: {entry!r} must be a bare name or 'name=/absolute/path'")
        if sep:
            if not Path(path).is_absolute() or not os.access(path, os.X_OK):
                raise ConfigurationError(f"SandboxPolicy.programs: {path!r} (for {name!r}) is not an executable "
                                         "absolute path")
            found[name] = str(Path(path).resolve())
            continue
        located = shutil.which(name, path=SAFE_PATH)
        if located is None:
            missing.append(name)
        else:
            found[name] = str(Path(located).resolve())
    return found, missing


def split_command(command: str) -> list[str]:
    """Split a command line the way a POSIX shell splits words (quotes, backslashes), refusing the
    shell operators (``|``, ``>``, ``;``, ``&&``, ...) a shell would act on: there is no shell."""
    try:
        argv = shlex.split(command, posix=True)
    except ValueError as exc:
        raise CommandRefused(
            f"the command cannot be split into arguments ({exc}); check its quotes", reason="parse_error"
        ) from exc
    operator = _unquoted_operator(command)
    if operator is not None:
        raise CommandRefused(
            f"{operator!r} is shell syntax, and commands run without a shell: no pipes, redirections, "
            "';', '&&' or background jobs; run one program per call, and quote the character if you meant it "
            "literally", reason="shell_syntax",
        )
    return argv


def _unquoted_operator(command: str) -> str | None:
    # The non-POSIX lexer keeps quotes on its tokens, so only unquoted operators come out bare.
    lexer = shlex.shlex(command, posix=False, punctuation_chars="".join(sorted(_OPERATOR_CHARS)))
    lexer.whitespace_split = True
    previous = ""
    try:
        for token in lexer:
            if token and set(token) <= _OPERATOR_CHARS and not previous.endswith("\\"):
                return token
            previous = token
    except ValueError:
        return None
    return None


def _check_path(path: str, argument: str, root: Path) -> None:
    """Refuse ``path`` (named by ``argument``) unless it stays inside ``root`` once every symlink on
    the way is resolved; a path that does not exist yet is checked through its existing parents."""
    if path.startswith(("/", "~")):
        raise CommandRefused(
            f"the argument {argument!r} is an absolute path; commands may only use paths relative to their "
            "working directory", reason="path_escape",
        )
    if ".." in path.replace("\\", "/").split("/"):
        raise CommandRefused(
            f"the argument {argument!r} climbs out of the working directory with '..'; use paths inside it",
            reason="path_escape",
        )
    if not path:
        return
    target = (root / path).resolve()  # non-strict: resolves the symlinks of the parts that exist
    if not target.is_relative_to(root):
        raise CommandRefused(
            f"the argument {argument!r} is a symlink (or goes through one) that leads outside the working "
            f"directory, to {str(target)!r}; links out of the sandbox are not followed",
            reason="path_escape",
        )


def check_command(argv: Sequence[str], programs: Mapping[str, str], policy: SandboxPolicy, workdir: str) -> list[str]:
    """The argv to execute (program by absolute path), or :class:`CommandRefused` saying why not."""
    if not argv:
        raise CommandRefused("the command is empty; give a program and its arguments", reason="empty")
    if sum(len(a) for a in argv) > policy.max_command_chars or len(argv) > 1024:
        raise CommandRefused(f"the command is longer than {policy.max_command_chars} characters", reason="too_long")
    if any("\x00" in a for a in argv):
        raise CommandRefused("the command contains a NUL character", reason="invalid")
    program = argv[0]
    if _ENV_ASSIGNMENT.match(program):
        raise CommandRefused(
            f"environment assignments ({program.split('=', 1)[0]}=...) are not allowed: commands get a fixed, "
            "minimal environment; run the program without it", reason="environment",
        )
    allowed = ", ".join(sorted(programs)) or "none"
    if "/" in program:
        raise CommandRefused(
            f"programs are named, not given by path ({program!r}); the allowed programs are: {allowed}",
            reason="program_path",
        )
    path = programs.get(program)
    if path is None:
        raise CommandRefused(f"the program {program!r} is not on the allow-list; the allowed programs are: {allowed}",
                             reason="not_allowed")
    arguments = list(argv[1:])
    root = Path(workdir).resolve()
    options = policy.options_of(program)
    check_arguments(program, arguments, options, lambda value, shown: _check_path(value, shown, root))
    return [path, *arguments]


# --------------------------------------------------------------------------------------- isolation


@dataclass(frozen=True, slots=True)
class Isolation:
    """How a command is confined on this host."""

    network_isolated: bool
    uid: int | None
    """The uid commands run as; None: the current user."""
    notes: tuple[str, ...] = ()
    """What could not be enforced here, in words for the model and the audit."""

    def to_dict(self) -> dict[str, object]:
        return {"network_isolated": self.network_isolated, "uid": self.uid,
                "user": "the current user" if self.uid is None else f"sandbox uid {self.uid}",
                "notes": list(self.notes)}


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _LIBC


def _make_preexec(policy: SandboxPolicy | None, *, isolate_network: bool, uid: int | None,
                  existing_processes: int = 0) -> Callable[[], None]:
    """The function run in the child between fork and exec. Everything is computed before the fork:
    the child only makes system calls."""
    libc = _libc()
    # Linux system calls; elsewhere isolation is reported unavailable and no_new_privs skipped.
    unshare, prctl = getattr(libc, "unshare", None), getattr(libc, "prctl", None)
    as_root = os.geteuid() == 0
    real_uid, real_gid = os.getuid(), os.getgid()
    limits: list[tuple[int, tuple[int, int]]] = [(resource.RLIMIT_CORE, (0, 0))]
    if policy is not None:
        limits += [
            (resource.RLIMIT_CPU, (policy.cpu_time_s, policy.cpu_time_s + 1)),
            (resource.RLIMIT_AS, (policy.memory_bytes, policy.memory_bytes)),
            (resource.RLIMIT_NPROC, (policy.max_processes + existing_processes,) * 2),
            (resource.RLIMIT_FSIZE, (policy.max_file_bytes, policy.max_file_bytes)),
            (resource.RLIMIT_NOFILE, (policy.max_open_files, policy.max_open_files)),
        ]
    limits = [(which, _within_current(which, value)) for which, value in limits]
    uid_map = f"{real_uid} {real_uid} 1".encode()
    gid_map = f"{real_gid} {real_gid} 1".encode()

    def write(path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def preexec() -> None:
        if isolate_network:
            if unshare is None:
                raise OSError(0, "unshare() is not available on this system")
            if as_root:
                if unshare(_CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            else:
                # Unprivileged: a user namespace (mapping our own ids only) grants the right to a network one.
                if unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER|CLONE_NEWNET)")
                write("/proc/self/setgroups", b"deny")
                write("/proc/self/uid_map", uid_map)
                write("/proc/self/gid_map", gid_map)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        for which, value in limits:
            resource.setrlimit(which, value)
        if prctl is not None and prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        os.umask(0o022)

    return preexec


def _within_current(which: int, wanted: tuple[int, int]) -> tuple[int, int]:
    """``wanted`` lowered to this process's hard limit: a limit can be lowered, never raised, once the
    child has dropped its privileges."""
    _soft, hard = resource.getrlimit(which)
    new_hard = wanted[1] if hard == resource.RLIM_INFINITY else min(wanted[1], hard)
    return min(wanted[0], new_hard), new_hard


_PROBES: dict[tuple[str, int | None], tuple[bool, str]] = {}
_PROBE_LOCK = threading.Lock()


async def probe_isolation(kind: Literal["network", "user"], uid: int | None = None) -> tuple[bool, str]:
    """Whether this host lets the sandbox isolate the network (``network``) or switch to ``uid``
    (``user``): ``(ok, why not)``. Found out once per process by running ``true`` that way."""
    key = (kind, uid)
    with _PROBE_LOCK:
        known = _PROBES.get(key)
    if known is not None:
        return known
    true_path = shutil.which("true", path=SAFE_PATH)
    if true_path is None:
        result = (False, "the probe program 'true' is missing")
    else:
        preexec = _make_preexec(None, isolate_network=kind == "network", uid=uid if kind == "user" else None)
        what = "unshare(CLONE_NEWNET)" if kind == "network" else f"switching to uid {uid}"
        try:
            proc = await asyncio.create_subprocess_exec(
                true_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                cwd="/", env={}, preexec_fn=preexec, start_new_session=True,
            )
            code = await proc.wait()
            result = (True, "") if code == 0 else (False, f"{what} failed (exit {code})")
        except (OSError, subprocess.SubprocessError) as exc:
            result = (False, f"{what} is not permitted for this process ({type(exc).__name__})")
    with _PROBE_LOCK:
        _PROBES[key] = result
    return result


# ------------------------------------------------------------------------------------------ killing


def _processes() -> Iterator[tuple[int, bool, tuple[str, ...]]]:
    """``(pid, is a zombie, (real, effective, saved uid))`` of every process, from /proc."""
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            with (entry / "status").open(encoding="ascii", errors="replace") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        zombie = fields.get("State", "").strip().startswith(("Z", "X"))
        yield int(entry.name), zombie, tuple(fields.get("Uid", "").split()[0:3])


def pids_of_uid(uid: int, *, zombies: bool = False) -> list[int]:
    """Processes whose real, effective or saved uid is ``uid`` (from /proc). Zombies (dead, not yet
    reaped by their parent) are left out unless asked for; they still count for ``RLIMIT_NPROC``."""
    return [pid for pid, zombie, uids in _processes() if str(uid) in uids and (zombies or not zombie)]


def uids_with_processes(first: int, last: int) -> set[int]:
    """The uids in ``first..last`` that own a process, zombies included (one pass over /proc)."""
    found: set[int] = set()
    for _pid, _zombie, uids in _processes():
        found.update(uid for uid in map(int, uids) if first <= uid <= last)
    return found


async def kill_uid(uid: int) -> None:
    """Kill every process of ``uid``: ``kill -KILL -1`` run *as* that uid (the kernel signals all its
    processes at once, so a fork bomb cannot outrun it), then a sweep of /proc for stragglers."""
    if uid in (0, os.getuid(), os.geteuid()):
        raise ConfigurationError(f"refusing to kill every process of uid {uid}: it is not a sandbox uid")
    kill_path = shutil.which("kill", path=SAFE_PATH)
    if kill_path is not None:
        try:
            proc = await asyncio.create_subprocess_exec(
                kill_path, "-s", "KILL", "--", "-1", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd="/", env={"PATH": SAFE_PATH}, user=uid, group=uid, extra_groups=[],
            )
            await proc.wait()
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("could not run kill as uid %s (%s); sweeping /proc instead", uid, exc)
    for _ in range(50):
        pids = pids_of_uid(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.01)
    logger.warning("processes of sandbox uid %s survived SIGKILL: %s", uid, pids_of_uid(uid))


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------ running


@dataclass(slots=True)
class ProcessOutcome:
    """How a sandboxed process ended, and what it printed (kept up to the policy's cap)."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_bytes: int
    """Bytes the command wrote to stdout in all (``stdout`` holds the first ones)."""
    stderr_bytes: int
    duration_s: float
    killed: str | None = None
    """``wall_time`` or ``output`` when the sandbox killed it; None otherwise."""


async def _pump(stream: asyncio.StreamReader | None, kept: bytearray, limit: int, totals: list[int], index: int,
                on_flood: Callable[[], None], flood_at: int) -> None:
    if stream is None:
        return
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return
        totals[index] += len(chunk)
        room = limit - len(kept)
        if room > 0:
            kept += chunk[:room]
        if totals[0] + totals[1] > flood_at:
            on_flood()


async def _feed(stream: asyncio.StreamWriter | None, data: bytes) -> None:
    if stream is None:
        return
    try:
        stream.write(data)
        await stream.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the program did not read all of its input: its business
    finally:
        with contextlib.suppress(OSError):
            stream.close()


async def run_sandboxed(argv: Sequence[str], *, cwd: str, policy: SandboxPolicy, isolation: Isolation,
                        stdin: bytes | None = None) -> ProcessOutcome:
    """Run a checked argv (see :func:`check_command`) under the policy's limits.

    Raises :class:`CommandRefused` when the sandbox cannot be set up or the program cannot start;
    a killed command is reported in :attr:`ProcessOutcome.killed`, not raised.
    """
    extra = 0
    if isolation.uid is None and os.geteuid() != 0:
        # RLIMIT_NPROC counts every process of the user: allow max_processes *more* than it has now.
        extra = len(pids_of_uid(os.getuid()))
    preexec = _make_preexec(policy, isolate_network=isolation.network_isolated, uid=isolation.uid,
                            existing_processes=extra)
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=cwd, env=policy.command_environment(cwd), preexec_fn=preexec,
            start_new_session=True,
        )
    except subprocess.SubprocessError as exc:
        raise CommandRefused(f"the sandbox could not be set up for this command ({exc}); nothing was run",
                             reason="sandbox_setup") from exc
    except OSError as exc:
        raise CommandRefused(f"the program could not be started: {exc.strerror or exc}", reason="start_failed") from exc

    pgid = proc.pid  # start_new_session: the program leads its own process group
    killed: list[str] = []

    def kill(reason: str) -> None:
        if not killed:
            killed.append(reason)
        _kill_group(pgid)

    kept_out, kept_err, totals = bytearray(), bytearray(), [0, 0]
    limit, flood_at = policy.max_output_bytes, policy.kill_output_bytes
    tasks = [
        asyncio.create_task(_pump(proc.stdout, kept_out, limit, totals, 0, lambda: kill("output"), flood_at)),
        asyncio.create_task(_pump(proc.stderr, kept_err, limit, totals, 1, lambda: kill("output"), flood_at)),
        asyncio.create_task(_feed(proc.stdin, stdin or b"")),
    ]
    try:
        try:
            async with asyncio.timeout(policy.wall_time_s):
                await _exited(proc)
        except TimeoutError:
            kill("wall_time")
    finally:
        # Runs on success, timeout and cancellation alike: nothing the command started survives it.
        await _stop_everything(proc, pgid, isolation.uid, tasks)
    return ProcessOutcome(proc.returncode, bytes(kept_out), bytes(kept_err), totals[0], totals[1],
                          time.monotonic() - started, killed[0] if killed else None)


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Wait for the program itself to exit. (``Process.wait`` also waits for its pipes to close, which
    a background child holding them would delay until the wall-time limit.)"""
    if proc.returncode is not None:
        return
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (old kernel), or already reaped
        delay = 0.001
        while proc.returncode is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def _stop_everything(proc: asyncio.subprocess.Process, pgid: int, uid: int | None,
                           tasks: list[asyncio.Task[None]]) -> None:
    _kill_group(pgid)  # background children and a killed command's descendants
    if uid is not None:
        await kill_uid(uid)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
    # The pipes close once the last process holding them is gone.
    _done, pending = await asyncio.wait(tasks, timeout=5.0)
    for task in pending:
        task.cancel()
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            logger.warning("reading a sandboxed command's output failed: %r", task.exception())
