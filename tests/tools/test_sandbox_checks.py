"""The sandbox's command checks, without running anything: every refused shape, and what passes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentadapter.agents.tools.errors import CommandRefused
from agentadapter.agents.tools.sandbox import (
    DEFAULT_PROGRAMS,
    SandboxPolicy,
    check_command,
    kill_uid,
    resolve_programs,
    split_command,
)
from agentadapter.llm.errors import ConfigurationError

PROGRAMS = {"cat": "/usr/bin/cat", "echo": "/usr/bin/echo", "ls": "/usr/bin/ls", "sort": "/usr/bin/sort",
            "grep": "/usr/bin/grep", "find": "/usr/bin/find", "cp": "/usr/bin/cp"}
POLICY = SandboxPolicy()


@pytest.fixture
def workdir(tmp_path: Path) -> str:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("hello\n")
    (work / "docs").mkdir()
    (work / "docs" / "a.txt").write_text("a\n")
    (tmp_path / "secret.txt").write_text("secret\n")
    os.symlink("/etc/passwd", work / "passwd-link")
    os.symlink(tmp_path / "secret.txt", work / "docs" / "sneaky")
    os.symlink("notes.txt", work / "inner-link")
    return str(work)


def refused(command: str, workdir: str) -> CommandRefused:
    with pytest.raises(CommandRefused) as caught:
        check_command(split_command(command), PROGRAMS, POLICY, workdir)
    return caught.value


@pytest.mark.parametrize(("command", "reason"), [
    ("bash -c 'cat notes.txt'", "not_allowed"),
    ("python3 -c 'print(1)'", "not_allowed"),
    ("env cat notes.txt", "not_allowed"),
    ("sudo cat notes.txt", "not_allowed"),
    ("/bin/cat notes.txt", "program_path"),
    ("./cat notes.txt", "program_path"),
    ("../../bin/sh", "program_path"),
    ("LD_PRELOAD=./evil.so cat notes.txt", "environment"),
    ("PATH=. ls", "environment"),
    ("BASH_ENV=x echo hi", "environment"),
    ("cat notes.txt | grep hello", "shell_syntax"),
    ("echo hi > out.txt", "shell_syntax"),
    ("cat < notes.txt", "shell_syntax"),
    ("echo hi ; ls", "shell_syntax"),
    ("echo hi && ls", "shell_syntax"),
    ("ls &", "shell_syntax"),
    ("echo hi>out.txt", "shell_syntax"),
    ("cat notes.txt|grep x", "shell_syntax"),
    ("find . -exec sh ;", "shell_syntax"),
    ("cat /etc/passwd", "path_escape"),
    ("cat ~/.ssh/id_rsa", "path_escape"),
    ("cat ../secret.txt", "path_escape"),
    ("cat docs/../../secret.txt", "path_escape"),
    ("ls ..", "path_escape"),
    ("grep -r root /etc", "path_escape"),
    ("grep --file=/etc/shadow notes.txt", "path_escape"),
    ("grep -f/etc/shadow notes.txt", "path_escape"),
    ("cp notes.txt --target-directory=/tmp", "path_escape"),
    ("cat passwd-link", "path_escape"),
    ("cat docs/sneaky", "path_escape"),
    ("sort --compress-program=sh notes.txt", "denied_option"),
    ("sort --compress-prog=sh notes.txt", "denied_option"),
    ("find . -exec sh \\;", "denied_option"),
    ("", "empty"),
    ("cat 'notes.txt", "parse_error"),
])
def test_refused_commands_say_why(command: str, reason: str, workdir: str) -> None:
    error = refused(command, workdir)
    assert error.reason == reason
    assert error.message  # a sentence for the model


def test_refusals_name_the_allowed_programs_and_the_way_out(workdir: str) -> None:
    assert "cat, cp, echo, find, grep, ls, sort" in refused("bash", workdir).message
    assert "relative" in refused("cat /etc/passwd", workdir).message
    assert "/etc/passwd" in refused("cat passwd-link", workdir).message
    assert "without a shell" in refused("ls | wc", workdir).message


@pytest.mark.parametrize("command", [
    "cat notes.txt",
    "cat ./notes.txt docs/a.txt",
    "cat inner-link",
    "ls -la docs",
    "grep -n 'hello world' notes.txt",
    "echo 'a | b' '>' x \\; 'x;y'",  # quoted or escaped operators are plain arguments
    "echo http://example.com/a/b",
    "echo x=y a=b",
    "sort -r -k2 notes.txt",
    "cp notes.txt copy.txt",
    "grep -e ^/usr notes.txt",
])
def test_allowed_commands_resolve_to_the_program_path(command: str, workdir: str) -> None:
    argv = check_command(split_command(command), PROGRAMS, POLICY, workdir)
    assert argv[0] == PROGRAMS[command.split()[0]]
    assert argv[1:] == split_command(command)[1:]


def test_limits_on_size_and_nul(workdir: str) -> None:
    with pytest.raises(CommandRefused, match="longer than") as caught:
        check_command(["echo", "x" * 40_000], PROGRAMS, POLICY, workdir)
    assert caught.value.reason == "too_long"
    with pytest.raises(CommandRefused, match="NUL"):
        check_command(["echo", "a\x00b"], PROGRAMS, POLICY, workdir)


def test_the_allow_list_resolves_on_the_fixed_path_and_reports_missing_programs() -> None:
    found, missing = resolve_programs(("cat", "ls", "surely-not-a-program-xyz"))
    assert Path(found["cat"]).is_absolute() and Path(found["ls"]).is_absolute()
    assert missing == ["surely-not-a-program-xyz"]
    assert resolve_programs(("mycat=/bin/cat",))[0]["mycat"] == str(Path("/bin/cat").resolve())
    with pytest.raises(ConfigurationError, match="bare name"):
        resolve_programs(("/bin/cat",))
    with pytest.raises(ConfigurationError, match="executable"):
        resolve_programs(("x=relative/path",))


def test_the_default_allow_list_holds_no_program_that_runs_others() -> None:
    runners = {"sh", "bash", "dash", "zsh", "env", "python", "python3", "perl", "ruby", "node", "awk", "sed",
               "find", "xargs", "tar", "git", "sudo", "su", "nice", "timeout", "nohup", "curl", "wget", "ssh"}
    assert not runners & set(DEFAULT_PROGRAMS)


def test_policy_validation() -> None:
    assert SandboxPolicy().uid_range == (1_900_000_000, 1_900_000_255)  # test_shell.py probes this range
    with pytest.raises(ConfigurationError, match="uid_range"):
        SandboxPolicy(uid_range=(0, 10))
    with pytest.raises(ConfigurationError, match="kill_output_bytes"):
        SandboxPolicy(max_output_bytes=100, kill_output_bytes=10)
    with pytest.raises(ConfigurationError, match="positive"):
        SandboxPolicy(wall_time_s=0)


async def test_the_uid_wide_kill_never_targets_root_or_this_process_s_user() -> None:
    for uid in {0, os.getuid(), os.geteuid()}:
        with pytest.raises(ConfigurationError, match="not a sandbox uid"):
            await kill_uid(uid)
