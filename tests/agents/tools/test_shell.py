"""The ``shell`` tool end to end: allowed commands run, refused ones never do, limits kill, all audited.

Run as root (as in CI), commands get their own unprivileged uid, so ``RLIMIT_NPROC`` holds and the
tests can check that nothing of a command survives it; a few checks need that and skip otherwise.
Network isolation is tested where ``unshare`` is permitted, and its absence is simulated to test
the documented fallback.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentadapter.agents import AgentContext, LLMAgent
from agentadapter.agents.tools import sandbox
from agentadapter.agents.tools.audit import InMemoryToolAudit, ToolAuditRecord
from agentadapter.agents.tools.errors import CommandKilled, CommandRefused
from agentadapter.agents.tools.sandbox import SAFE_PATH, SandboxPolicy, pids_of_uid
from agentadapter.agents.tools.shell import Shell

from .conftest import call, reply, scripted, tool_results

ROOT = os.geteuid() == 0
PYTHON = shutil.which("python3", path=SAFE_PATH)
needs_root = pytest.mark.skipif(not ROOT, reason="per-command uids (and so uid-wide cleanup checks) need root")
needs_python = pytest.mark.skipif(PYTHON is None, reason=f"no python3 on {SAFE_PATH} to misbehave with")

TEST_PROGRAMS = (*sandbox.DEFAULT_PROGRAMS, "sh", "yes", "sleep", "ln", *(("python3",) if PYTHON else ()))
TEST_OPTIONS = {"sh": "-c=", "python3": "-c="}  # misbehaving on purpose takes a script

MakeShell = Callable[..., Shell]


async def usable_uid_range() -> tuple[int, int] | None:
    """The default uid range, or a lower one where the host maps only low uids (rootless containers)."""
    if not ROOT:
        return None
    default_first = 1_900_000_000  # SandboxPolicy's default uid_range starts here
    for first in (default_first, 40_000):
        ok, _ = await sandbox.probe_isolation("user", first)
        if ok:
            return first, first + 255
    pytest.skip("running as root, but this host refuses to switch to an unprivileged uid, so the sandbox refuses "
                "every command (as documented); nothing to test here")


@pytest.fixture
async def make_shell(audit: InMemoryToolAudit) -> AsyncIterator[MakeShell]:
    shells: list[Shell] = []
    uid_range = await usable_uid_range()

    def make(**policy: Any) -> Shell:
        options = {"programs": TEST_PROGRAMS, "options": TEST_OPTIONS, "wall_time_s": 10.0, "uid_range": uid_range,
                   **policy}
        workspace = options.pop("workspace", "run")
        built = Shell(SandboxPolicy(**options), audit=audit, workspace=workspace)
        shells.append(built)
        return built

    yield make
    for built in shells:
        await built.close()


def context(run_id: str = "run-1", agent: str = "worker") -> AgentContext:
    return AgentContext(LLMAgent(agent), run_id=run_id)


def last(audit: InMemoryToolAudit) -> ToolAuditRecord:
    return audit.records[-1]


# ----------------------------------------------------------------------------------- allowed commands


async def test_allowed_commands_run_in_a_working_directory_kept_for_the_run(make_shell: MakeShell) -> None:
    shell = make_shell()
    ctx = context()
    assert (await shell.run("echo hello world", context=ctx)).stdout == "hello world\n"
    await shell.run("mkdir notes", context=ctx)
    await shell.run("touch notes/a.txt", context=ctx)
    await shell.run("cp notes/a.txt notes/b.txt", context=ctx)
    listing = await shell.run("ls notes", context=ctx)
    assert listing.exit_code == 0 and listing.stdout.split() == ["a.txt", "b.txt"]
    sorted_lines = await shell.run("sort -r", stdin="b\na\nc\n", context=ctx)
    assert sorted_lines.stdout == "c\nb\na\n"
    counted = await shell.run("wc -l", stdin="1\n2\n3\n", context=ctx)
    assert counted.stdout.strip() == "3"
    # A non-zero exit is a result, not an error: the model reads the exit code.
    missing = await shell.run("grep nothing notes/a.txt", context=ctx)
    assert missing.exit_code == 1 and missing.stdout == ""
    failed = await shell.run("cat no-such-file", context=ctx)
    assert failed.exit_code != 0 and "No such file" in failed.stderr
    # Another run starts in its own, empty directory.
    assert (await shell.run("ls", context=context("run-2"))).stdout == ""


async def test_a_fresh_directory_per_call_when_asked(make_shell: MakeShell) -> None:
    shell = make_shell(workspace="call")
    await shell.run("touch left-behind", context=context())
    assert (await shell.run("ls", context=context())).stdout == ""


async def test_commands_see_a_minimal_fixed_environment(make_shell: MakeShell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    shell = make_shell(programs=("sh",))
    result = await shell.run("sh -c 'env | sort'", context=context())
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert "SECRET_TOKEN" not in names and "do-not-leak" not in result.stdout
    assert names <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TERM", "PWD", "SHLVL", "_", "OLDPWD"}


# ----------------------------------------------------------------------------------- refused commands


@pytest.mark.parametrize(("command", "reason"), [
    ("bash -c 'touch pwned'", "not_allowed"),
    ("env touch pwned", "not_allowed"),
    ("/usr/bin/touch pwned", "program_path"),
    ("LD_PRELOAD=./x.so touch pwned", "environment"),
    ("touch pwned ; touch pwned2", "shell_syntax"),
    ("touch pwned | cat", "shell_syntax"),
    ("touch /tmp/agentadapter-test-escape", "path_escape"),
    ("touch ../pwned", "path_escape"),
    ("sort -o/tmp/agentadapter-test-escape --", "path_escape"),
    ("sort -uo/tmp/agentadapter-test-escape", "path_escape"),
    ("sort --output=/tmp/agentadapter-test-escape", "path_escape"),
    ("cp -vt/tmp pwned", "path_escape"),
    ("sort --compress-program=touch x", "option_not_allowed"),
    ("sort --files0-from=list", "option_not_allowed"),
])
async def test_refused_commands_never_run_and_are_audited(command: str, reason: str, make_shell: MakeShell,
                                                          audit: InMemoryToolAudit) -> None:
    shell = make_shell()
    ctx = context()
    with pytest.raises(CommandRefused) as caught:
        await shell.run(command, context=ctx)
    assert caught.value.reason == reason
    record = last(audit)
    assert (record.tool, record.action, record.outcome, record.reason) == ("shell", command, "refused", reason)
    assert record.exit_code is None and record.agent == "worker" and record.run_id == "run-1"
    assert not Path("/tmp/agentadapter-test-escape").exists()
    assert (await shell.run("ls", context=ctx)).stdout == ""  # nothing was created


async def test_a_symlink_out_of_the_workspace_is_refused(make_shell: MakeShell) -> None:
    shell = make_shell()
    workdir = Path(await shell.prepare("run-1"))
    (workdir / "passwd").symlink_to("/etc/passwd")
    (workdir / "fine").symlink_to("notes.txt")
    (workdir / "notes.txt").write_text("ok\n")
    with pytest.raises(CommandRefused, match="leads outside") as caught:
        await shell.run("cat passwd", context=context())
    assert caught.value.reason == "path_escape"
    assert (await shell.run("cat fine", context=context())).stdout == "ok\n"


async def test_paths_through_a_linked_directory_out_are_refused(make_shell: MakeShell, tmp_path: Path) -> None:
    shell = make_shell()
    workdir = Path(await shell.prepare("run-1"))
    (workdir / "notes.txt").write_text("ok\n")
    (workdir / "outdir").symlink_to(tmp_path, target_is_directory=True)
    for command in ("touch outdir/made", "sort -o outdir/made notes.txt", "cp notes.txt outdir/made",
                    "cp -t outdir notes.txt", "sort notes.txt --output=outdir/made"):
        with pytest.raises(CommandRefused, match="leads outside") as caught:
            await shell.run(command, context=context())
        assert caught.value.reason == "path_escape"
    assert list(tmp_path.iterdir()) == []


async def test_links_out_deeper_in_the_tree_are_removed_before_a_command_runs(make_shell: MakeShell) -> None:
    shell = make_shell()
    workdir = Path(await shell.prepare("run-1"))
    (workdir / "docs").mkdir()
    (workdir / "docs" / "a.txt").write_text("root here\n")
    (workdir / "docs" / "etc").symlink_to("/etc", target_is_directory=True)  # put in after prepare()
    result = await shell.run("grep -R root docs", context=context())
    assert result.stdout == "docs/a.txt:root here\n"  # /etc/passwd was not searched
    assert any("removed the symlink 'docs/etc'" in note for note in result.notes)


ORDINARY: list[tuple[str, str, str]] = [  # (command, stdin, stdout) in a directory of notes.txt and docs/a.txt
    ("cat -n notes.txt", "", "     1\tb\n     2\ta\n     3\tc\n"),
    ("cat -", "x\n", "x\n"),
    ("sort -r notes.txt", "", "c\nb\na\n"),
    ("sort -t/ -k2 -", "1/b\n2/a\n", "2/a\n1/b\n"),
    ("head -2 notes.txt", "", "b\na\n"),
    ("head -n -1 notes.txt", "", "b\na\n"),
    ("tail -n +2 notes.txt", "", "a\nc\n"),
    ("grep -n a notes.txt", "", "2:a\n"),
    ("grep -e -x -e c notes.txt", "", "c\n"),
    ("grep -rl a docs", "", "docs/a.txt\n"),
    ("grep -hf docs/a.txt notes.txt", "", "a\n"),
    ("tr / _", "a/b\n", "a_b\n"),
    ("cut -d/ -f2", "a/b\n", "b\n"),
    ("echo /etc/passwd", "", "/etc/passwd\n"),
    ("echo -n hi -x", "", "hi -x"),
    ("printf %s- a -n", "", "a--n-"),
    ("seq -2 0", "", "-2\n-1\n0\n"),
    ("date -u -d @0 +%Y", "", "1970\n"),
    ("basename /x/docs/a.txt .txt", "", "a\n"),
    ("wc -l notes.txt", "", "3 notes.txt\n"),
    ("ls -1 docs", "", "a.txt\n"),
    ("stat -c %s docs/a.txt", "", "2\n"),
    ("nl -ba -w1 -s: notes.txt", "", "1:b\n2:a\n3:c\n"),
    ("md5sum --tag docs/a.txt", "", "MD5 (docs/a.txt) = 60b725f10c9c85c70d97880dfe8191b3\n"),
    ("diff -q notes.txt notes.txt", "", ""),
]


@pytest.mark.parametrize(("command", "stdin", "stdout"), ORDINARY)
async def test_ordinary_commands_run_and_print_what_they_should(command: str, stdin: str, stdout: str,
                                                                make_shell: MakeShell) -> None:
    shell = make_shell()
    workdir = Path(await shell.prepare("run-1"))
    (workdir / "notes.txt").write_text("b\na\nc\n")
    (workdir / "docs").mkdir()
    (workdir / "docs" / "a.txt").write_text("a\n")
    result = await shell.run(command, stdin=stdin, context=context())
    assert (result.exit_code, result.stdout, result.stderr) == (0, stdout, "")


async def test_output_options_write_inside_the_working_directory(make_shell: MakeShell) -> None:
    shell = make_shell()
    ctx = context()
    await shell.run("mkdir -p out/sub", context=ctx)
    await shell.run("sort -ruo out/sorted.txt -", stdin="a\nb\na\n", context=ctx)
    await shell.run("cp -t out/sub out/sorted.txt", context=ctx)
    assert (await shell.run("cat out/sub/sorted.txt", context=ctx)).stdout == "b\na\n"


@needs_python
async def test_links_leading_out_that_a_command_creates_are_removed(make_shell: MakeShell) -> None:
    shell = make_shell()
    made = await shell.run("python3 -c \"import os; os.symlink('/etc/passwd', 'leak'); os.symlink('x', 'ok')\"",
                           context=context())
    assert any("removed the symlink 'leak'" in note for note in made.notes)
    listing = await shell.run("ls", context=context())
    assert listing.stdout.split() == ["ok"]


# ----------------------------------------------------------------------------------- limits


async def test_a_command_running_too_long_is_killed_with_everything_it_started(make_shell: MakeShell,
                                                                               audit: InMemoryToolAudit) -> None:
    shell = make_shell(wall_time_s=0.5)
    with pytest.raises(CommandKilled, match=r"wall-time limit of 0\.5 s") as caught:
        await shell.run("sh -c 'sleep 30 & sleep 30'", context=context())
    assert caught.value.reason == "wall_time"
    record = last(audit)
    assert record.outcome == "killed" and record.reason == "wall_time" and record.exit_code is not None
    uid = record.details["sandbox"]["uid"]
    if uid is not None:
        assert pids_of_uid(uid) == []


async def test_runaway_output_is_killed_and_kept_output_is_capped(make_shell: MakeShell,
                                                                  audit: InMemoryToolAudit) -> None:
    shell = make_shell(max_output_bytes=1000, kill_output_bytes=256 * 1024)
    with pytest.raises(CommandKilled, match="runaway output") as caught:
        await shell.run("yes", context=context())
    assert caught.value.reason == "output"
    record = last(audit)
    assert record.outcome == "killed" and record.details["stdout_bytes"] > 256 * 1024
    assert len(record.output) < 5000  # the audit keeps a truncated copy


async def test_large_output_is_truncated_and_the_cut_stated(make_shell: MakeShell) -> None:
    shell = make_shell(max_output_bytes=1000)
    result = await shell.run("seq 1 20000", context=context())
    assert result.exit_code == 0 and len(result.stdout) == 1000
    assert any("stdout truncated: showing the first 1000 of 108894 bytes" in note for note in result.notes)
    assert result.to_dict()["notes"] == result.notes


async def test_cpu_time_is_limited(make_shell: MakeShell) -> None:
    shell = make_shell(cpu_time_s=1, wall_time_s=30)
    with pytest.raises(CommandKilled, match="CPU time") as caught:
        await shell.run("sh -c 'while :; do :; done'", context=context())
    assert caught.value.reason == "cpu_time"


@needs_python
async def test_memory_is_limited(make_shell: MakeShell) -> None:
    shell = make_shell(memory_bytes=128 * 1024 * 1024)
    result = await shell.run("python3 -c 'bytearray(512 * 1024 * 1024)'", context=context())
    assert result.exit_code != 0 and "MemoryError" in result.stderr
    assert any("128 MiB memory" in note for note in result.notes)


async def test_a_fork_bomb_is_contained_and_cleaned_up(make_shell: MakeShell, audit: InMemoryToolAudit) -> None:
    shell = make_shell(max_processes=16, wall_time_s=1.0)
    try:
        await shell.run("sh -c 'f() { f | f & }; f; sleep 30'", context=context())
    except CommandKilled as killed:
        assert killed.reason == "wall_time"
    record = last(audit)
    assert record.outcome in ("ok", "killed")
    uid = record.details["sandbox"]["uid"]
    if uid is not None:
        assert pids_of_uid(uid) == []


@needs_root
@needs_python
async def test_processes_that_leave_the_process_group_are_still_killed(make_shell: MakeShell,
                                                                        audit: InMemoryToolAudit) -> None:
    escape = ("import os, time\n"
              "for _ in range(4):\n"
              "    if os.fork() == 0:\n"
              "        os.setsid(); time.sleep(30); os._exit(0)\n"
              "time.sleep(30)\n")
    shell = make_shell(wall_time_s=1.0, max_processes=16)
    with pytest.raises(CommandKilled):
        await shell.run(f"python3 -c '{escape}'", context=context())
    assert pids_of_uid(last(audit).details["sandbox"]["uid"]) == []


@needs_root
async def test_background_children_do_not_outlive_their_command(make_shell: MakeShell,
                                                                 audit: InMemoryToolAudit) -> None:
    shell = make_shell()
    result = await shell.run("sh -c 'sleep 30 & echo started'", context=context())
    assert result.exit_code == 0 and result.stdout == "started\n"
    assert pids_of_uid(last(audit).details["sandbox"]["uid"]) == []


async def test_a_cancelled_command_is_killed_and_audited(make_shell: MakeShell, audit: InMemoryToolAudit) -> None:
    shell = make_shell(wall_time_s=30)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(shell.run("sleep 30", context=context()), 0.5)
    record = last(audit)
    assert record.outcome == "error" and record.reason == "CancelledError"
    uid = record.details.get("sandbox", {}).get("uid")
    if uid is not None:
        assert pids_of_uid(uid) == []


@needs_root
async def test_commands_run_as_an_unprivileged_uid_not_root(make_shell: MakeShell) -> None:
    shell = make_shell(programs=("sh",))
    result = await shell.run("sh -c 'id -u; touch /etc/agentadapter-test || echo denied'", context=context())
    uid_line, *rest = result.stdout.split("\n")
    assert int(uid_line) >= 1000 and result.sandbox["uid"] == int(uid_line)
    assert "denied" in rest and not Path("/etc/agentadapter-test").exists()


@needs_root
async def test_running_as_root_is_refused_without_an_unprivileged_uid(make_shell: MakeShell,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CommandRefused, match="as root") as caught:
        await make_shell(uid_range=None).run("echo hi", context=context())
    assert caught.value.reason == "root"
    shell = make_shell(uid_range=(1_900_001_000, 1_900_001_000))
    monkeypatch.setitem(sandbox._PROBES, ("user", 1_900_001_000), (False, "simulated: setuid not permitted"))
    with pytest.raises(CommandRefused, match="simulated: setuid not permitted"):
        await shell.run("echo hi", context=context())


# ----------------------------------------------------------------------------------- network


async def _listener() -> tuple[asyncio.Server, int, list[bool]]:
    connected: list[bool] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.append(True)
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connected


CONNECT = "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=2); print(\"connected\")'"


@needs_python
async def test_commands_have_no_network_where_the_host_allows_it(make_shell: MakeShell) -> None:
    ok, why = await sandbox.probe_isolation("network")
    if not ok:
        pytest.skip(f"this host cannot isolate the network: {why}")
    server, port, connected = await _listener()
    async with server:
        result = await make_shell().run(CONNECT.format(port=port), context=context())
    assert result.exit_code != 0 and "connected" not in result.stdout and not connected
    assert result.sandbox["network_isolated"] is True


@needs_python
async def test_without_a_network_namespace_the_result_and_audit_say_so(make_shell: MakeShell, audit: InMemoryToolAudit,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sandbox._PROBES, ("network", None), (False, "simulated: unshare not permitted"))
    server, port, connected = await _listener()
    async with server:
        result = await make_shell().run(CONNECT.format(port=port), context=context())
    assert result.stdout == "connected\n" and connected  # really not isolated: and it says so
    assert result.sandbox["network_isolated"] is False
    assert any("network not isolated on this host: simulated" in note for note in result.notes)
    assert last(audit).details["sandbox"]["network_isolated"] is False

    strict = make_shell(require_network_isolation=True)
    with pytest.raises(CommandRefused, match="cannot cut commands off the network") as caught:
        await strict.run("echo hi", context=context())
    assert caught.value.reason == "no_isolation"


async def test_allow_network_skips_isolation(make_shell: MakeShell) -> None:
    result = await make_shell(allow_network=True).run("echo hi", context=context())
    assert result.sandbox["network_isolated"] is False and result.notes == []


# ----------------------------------------------------------------------------------- audit and agents


async def test_every_command_leaves_an_audit_record(make_shell: MakeShell, audit: InMemoryToolAudit) -> None:
    shell = make_shell()
    await shell.run("echo audited", context=context("run-9", "auditor"))
    record = last(audit)
    assert record.to_dict() | {"started_at": 0, "duration_ms": 0} == {
        "tool": "shell", "action": "echo audited", "outcome": "ok", "agent": "auditor", "run_id": "run-9",
        "exit_code": 0, "duration_ms": 0, "output": "audited\n", "reason": "", "started_at": 0,
        "details": {"argv": ["echo", "audited"], "program": record.details["program"],
                    "sandbox": record.details["sandbox"], "stdout_bytes": 8, "stderr_bytes": 0},
    }
    assert record.duration_ms > 0 and Path(record.details["program"]).is_absolute()
    assert audit.find(run_id="run-9", outcome="ok") == [record]


async def test_an_agent_runs_commands_and_gets_refusals_as_error_results(make_shell: MakeShell,
                                                                         audit: InMemoryToolAudit) -> None:
    shell = make_shell(wall_time_s=0.5)
    _, _, config = scripted(
        reply(call("shell", command="echo from the agent")),
        reply(call("shell", command="cat /etc/passwd"), call("shell", command="sleep 5")),
        reply(call("shell", command="bash")),
        reply(call("shell", wrong_argument=1)),
        "done",
    )
    agent = LLMAgent("operator", model="script/m", tools=[shell.as_tool()])
    result = await agent.run("work", config)
    assert result.output == "done"
    outputs = tool_results(result)
    assert '"stdout": "from the agent\\n"' in outputs[0][0] and outputs[0][1] is False
    assert outputs[1][1] and "CommandRefused" in outputs[1][0] and "absolute path" in outputs[1][0]
    assert outputs[2][1] and "CommandKilled" in outputs[2][0] and "wall-time limit" in outputs[2][0]
    assert outputs[3][1] and "not on the allow-list" in outputs[3][0]
    assert outputs[4][1] and "invalid arguments" in outputs[4][0]
    assert [r.agent for r in audit.records] == ["operator"] * 4
    assert {r.run_id for r in audit.records} == {result.run_id}


def test_the_tool_describes_its_programs_and_limits() -> None:
    tool = Shell(SandboxPolicy(programs=("cat", "ls"), wall_time_s=5)).as_tool()
    assert tool.name == "shell" and tool.timeout == 20.0
    assert "Allowed programs: cat, ls." in tool.description and "5 s wall time" in tool.description
    assert list(tool.parameters["properties"]) == ["command", "stdin"]
