"""The sandbox's command checks, without running anything: hostile command lines of every shape
(glued and bundled options, ``=`` forms, file-list options, paths out, symlinks), and ordinary
ones that pass unchanged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agentadapter.agents.tools.errors import CommandRefused
from agentadapter.agents.tools.sandbox import (
    DEFAULT_OPTIONS,
    DEFAULT_PROGRAMS,
    SAFE_PATH,
    SandboxPolicy,
    check_command,
    kill_uid,
    resolve_programs,
    split_command,
)
from agentadapter.agents.tools.shell_options import ProgramOptions
from agentadapter.llm.errors import ConfigurationError

PROGRAMS = {"cat": "/usr/bin/cat", "echo": "/usr/bin/echo", "ls": "/usr/bin/ls", "sort": "/usr/bin/sort",
            "grep": "/usr/bin/grep", "find": "/usr/bin/find", "cp": "/usr/bin/cp"}
PROGRAMS_ALL = {**{name: f"/usr/bin/{name}" for name in DEFAULT_PROGRAMS}, **PROGRAMS}
POLICY = SandboxPolicy()


@pytest.fixture
def workdir(tmp_path: Path) -> str:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("hello\n")
    (work / "docs").mkdir()
    (work / "docs" / "a.txt").write_text("a\n")
    (tmp_path / "secret.txt").write_text("secret\n")
    (tmp_path / "outside").mkdir()
    os.symlink("/etc/passwd", work / "passwd-link")
    os.symlink(tmp_path / "secret.txt", work / "docs" / "sneaky")
    os.symlink(tmp_path / "outside", work / "outdir")
    os.symlink("notes.txt", work / "inner-link")
    return str(work)


def refused(command: str, workdir: str, programs: dict[str, str] = PROGRAMS_ALL) -> CommandRefused:
    with pytest.raises(CommandRefused) as caught:
        check_command(split_command(command), programs, POLICY, workdir)
    return caught.value


HOSTILE = [
    # programs, environment, shell syntax
    ("bash -c 'cat notes.txt'", "not_allowed"),
    ("python3 -c 'print(1)'", "not_allowed"),
    ("env cat notes.txt", "not_allowed"),
    ("sudo cat notes.txt", "not_allowed"),
    ("xargs cat", "not_allowed"),
    ("/bin/cat notes.txt", "program_path"),
    ("./cat notes.txt", "program_path"),
    ("../../bin/sh", "program_path"),
    ("LD_PRELOAD=./evil.so cat notes.txt", "environment"),
    ("PATH=. ls", "environment"),
    ("BASH_ENV=x echo hi", "environment"),
    ("POSIXLY_CORRECT=1 sort notes.txt", "environment"),
    ("cat notes.txt | grep hello", "shell_syntax"),
    ("echo hi > out.txt", "shell_syntax"),
    ("cat < notes.txt", "shell_syntax"),
    ("echo hi ; ls", "shell_syntax"),
    ("echo hi && ls", "shell_syntax"),
    ("ls &", "shell_syntax"),
    ("echo hi>out.txt", "shell_syntax"),
    ("cat notes.txt|grep x", "shell_syntax"),
    ("find . -exec sh ;", "shell_syntax"),
    # absolute, home and '..' operands
    ("cat /etc/passwd", "path_escape"),
    ("cat ~/.ssh/id_rsa", "path_escape"),
    ("cat ~root/.bashrc", "path_escape"),
    ("cat ../secret.txt", "path_escape"),
    ("cat docs/../../secret.txt", "path_escape"),
    ("ls ..", "path_escape"),
    ("grep -r root /etc", "path_escape"),
    ("cat -- /etc/passwd", "path_escape"),  # after '--' operands are still paths
    ("cat -- -n/../../secret.txt", "path_escape"),
    ("sort notes.txt /etc/shadow", "path_escape"),
    # path values: glued, bundled, '=' and separate, and after the operands (GNU permutes them)
    ("grep -f/etc/shadow notes.txt", "path_escape"),
    ("grep -rf/etc/shadow notes.txt", "path_escape"),
    ("grep --file=/etc/shadow notes.txt", "path_escape"),
    ("grep --file /etc/shadow notes.txt", "path_escape"),
    ("grep hello notes.txt --file=/etc/shadow", "path_escape"),
    ("grep --exclude-from=/etc/shadow -r x docs", "path_escape"),
    ("sort -o/etc/cron.d/x notes.txt", "path_escape"),
    ("sort -uo/etc/cron.d/x notes.txt", "path_escape"),
    ("sort -ruo /etc/cron.d/x notes.txt", "path_escape"),
    ("sort --output=../x notes.txt", "path_escape"),
    ("sort notes.txt -o/etc/cron.d/x", "path_escape"),
    ("sort -T/tmp notes.txt", "path_escape"),
    ("sort --random-source=/dev/urandom -R notes.txt", "path_escape"),
    ("cp notes.txt --target-directory=/tmp", "path_escape"),
    ("cp -vt/tmp notes.txt", "path_escape"),
    ("mv -t /tmp notes.txt", "path_escape"),
    ("touch -r/etc/shadow notes.txt", "path_escape"),
    ("touch --reference=/etc/shadow notes.txt", "path_escape"),
    ("date -f/etc/shadow", "path_escape"),
    ("date -r /etc/passwd", "path_escape"),
    ("diff --from-file=/etc/passwd notes.txt", "path_escape"),
    ("diff -X/etc/shadow -r docs docs", "path_escape"),
    # symlinks leading out: named, gone through, or the parent of a file not yet created
    ("cat passwd-link", "path_escape"),
    ("cat docs/sneaky", "path_escape"),
    ("ls outdir", "path_escape"),
    ("touch outdir/new-file", "path_escape"),
    ("cp notes.txt outdir/copy", "path_escape"),
    ("cp -t outdir notes.txt", "path_escape"),
    ("sort -o outdir/sorted notes.txt", "path_escape"),
    ("grep -f docs/sneaky notes.txt", "path_escape"),
    # options that read file lists, run programs, or are simply not listed
    ("sort --files0-from=list notes.txt", "option_not_allowed"),
    ("wc --files0-from=list", "option_not_allowed"),
    ("md5sum -c sums.txt", "option_not_allowed"),
    ("sha256sum --check sums.txt", "option_not_allowed"),
    ("sort --compress-program=sh notes.txt", "option_not_allowed"),
    ("sort --compress-prog=sh notes.txt", "option_not_allowed"),  # GNU abbreviation
    ("sort -S1 --compress-program sh notes.txt", "option_not_allowed"),
    ("diff -l notes.txt docs/a.txt", "option_not_allowed"),  # pipes through 'pr'
    ("diff --paginate notes.txt docs/a.txt", "option_not_allowed"),
    ("date -s 2000-01-01", "option_not_allowed"),
    ("date --set=2000-01-01", "option_not_allowed"),
    ("cp -S/../../x -b notes.txt docs/a.txt", "option_not_allowed"),
    ("cp --suffix=/x --backup notes.txt docs/a.txt", "option_not_allowed"),
    ("rm -rf --no-preserve-root docs", "option_not_allowed"),
    ("find . -exec sh \\;", "option_not_allowed"),  # find has no option list: it takes none
    ("find . -name x", "option_not_allowed"),
    ("sort -uf/etc/x notes.txt", "option_not_allowed"),  # '/' is no option of sort
    ("cat -Z notes.txt", "option_not_allowed"),
    ("ls -la% docs", "option_not_allowed"),
    ("ls --al", "option_not_allowed"),  # abbreviations are refused
    ("head --lin=2 notes.txt", "option_not_allowed"),
    ("cat --number=5 notes.txt", "option_not_allowed"),  # a flag given a value
    ("sort notes.txt -o", "option_not_allowed"),  # a value missing
    ("grep -e", "option_not_allowed"),
    ("grep --=x notes.txt", "option_not_allowed"),
    # parse errors and empty commands
    ("", "empty"),
    ("cat 'notes.txt", "parse_error"),
]


@pytest.mark.parametrize(("command", "reason"), HOSTILE)
def test_hostile_commands_are_refused_and_say_why(command: str, reason: str, workdir: str) -> None:
    error = refused(command, workdir)
    assert error.reason == reason
    assert error.message  # a sentence for the model


def test_refusals_name_the_allowed_programs_and_the_way_out(workdir: str) -> None:
    assert "cat, cp, echo, find, grep, ls, sort" in refused("bash", workdir, PROGRAMS).message
    assert "relative" in refused("cat /etc/passwd", workdir).message
    assert "/etc/passwd" in refused("cat passwd-link", workdir).message
    assert "without a shell" in refused("ls | wc", workdir).message
    unknown = refused("sort -u --compress-program=sh notes.txt", workdir).message
    assert "'--compress-program'" in unknown and "'sort'" in unknown
    assert "-o PATH" in unknown and "--output=PATH" in unknown and "-t VALUE" in unknown  # what it accepts
    bundled = refused("ls -laZ% docs", workdir).message
    assert "'-%' (in '-laZ%')" in bundled and "'ls'" in bundled and "--all" in bundled
    assert "takes no options" in refused("find . -exec sh", workdir).message
    assert "needs a value" in refused("sort notes.txt -o", workdir).message
    assert "takes no value" in refused("cat --number=5 notes.txt", workdir).message
    assert "'-uo/etc/cron.d/x'" in refused("sort -uo/etc/cron.d/x notes.txt", workdir).message


ORDINARY = [
    "cat notes.txt",
    "cat ./notes.txt docs/a.txt",
    "cat inner-link",
    "cat -",
    "cat -- -n",  # a file named '-n'
    "cat -An notes.txt",
    "ls -la docs",
    "ls -la --color=never --time-style=+%Y docs",
    "ls --color docs",
    "ls -1 -I '*.txt' docs",
    "grep -n 'hello world' notes.txt",
    "grep -rn hello .",
    "grep -e -x notes.txt",  # a pattern starting with '-', as -e's value
    "grep -C2 hello notes.txt",
    "grep -2 hello notes.txt",
    "grep -ihf docs/a.txt notes.txt",
    "grep --file=docs/a.txt notes.txt",
    "grep -e ^/usr notes.txt",
    "echo 'a | b' '>' x \\; 'x;y'",  # quoted or escaped operators are plain arguments
    "echo http://example.com/a/b",
    "echo /etc/passwd",  # echo prints its arguments, never opens them
    "echo -n hi -x",  # after the first operand, echo takes everything as text
    "echo x=y a=b",
    "printf '%s\\n' -n /etc",
    "sort -r -k2 notes.txt",
    "sort -uo sorted.txt notes.txt",
    "sort -t: -k2,2n notes.txt",
    "sort -t / notes.txt",  # a plain value may be anything
    "sort notes.txt -o sorted.txt",
    "sort --output=docs/sorted.txt -- notes.txt",
    "cut -d/ -f1 notes.txt",
    "tr / _",
    "tr -d '\\n'",
    "seq -5 5",
    "seq -w 1 10",
    "date +%Y",
    "date -u -d @0 +%s",
    "date -Iseconds",
    "head -5 notes.txt",
    "head -n -1 notes.txt",
    "head --lines=2 notes.txt",
    "tail -n +2 notes.txt",
    "cp notes.txt copy.txt",
    "cp -t docs notes.txt",
    "cp -rv docs docs2",
    "mkdir -p a/b/c",
    "mkdir -m 700 private",
    "touch -d '2020-01-01 00:00' notes.txt",
    "touch docs/new.txt",
    "diff -u notes.txt docs/a.txt",
    "diff -U3 --label a --label b notes.txt docs/a.txt",
    "wc -lwc notes.txt",
    "md5sum notes.txt",
    "stat -c %s notes.txt",
    "basename /a/b/c.txt .txt",
    "dirname /a/b",
    "uniq -c notes.txt",
    "nl -ba notes.txt",
    "rm -rf docs",
]


@pytest.mark.parametrize("command", ORDINARY)
def test_ordinary_commands_resolve_to_the_program_path(command: str, workdir: str) -> None:
    argv = check_command(split_command(command), PROGRAMS_ALL, POLICY, workdir)
    assert argv[0] == PROGRAMS_ALL[command.split()[0]]
    assert argv[1:] == split_command(command)[1:]  # checked, never rewritten


def test_option_lists_come_from_the_policy_and_a_program_without_one_takes_none(workdir: str) -> None:
    programs = {**PROGRAMS, "sh": "/bin/sh"}
    with pytest.raises(CommandRefused, match="takes no options"):
        check_command(["sh", "-c", "id"], programs, POLICY, workdir)
    assert check_command(["sh", "script.sh"], programs, POLICY, workdir)[1:] == ["script.sh"]
    with pytest.raises(CommandRefused, match="absolute path"):
        check_command(["sh", "/etc/profile"], programs, POLICY, workdir)
    policy = SandboxPolicy(options={"sh": "-c= -e", "cat": ProgramOptions.parse("-n")})
    assert check_command(["sh", "-ec", "cat /etc/passwd"], programs, policy, workdir)[1:] == [
        "-ec", "cat /etc/passwd"]  # the operator chose to allow a shell: its script is text
    with pytest.raises(CommandRefused, match=r"accepts only: -n \("):
        check_command(["cat", "-A", "notes.txt"], programs, policy, workdir)  # the entry replaces the default
    assert check_command(["sort", "-r", "notes.txt"], programs, policy, workdir)  # other defaults stay


def test_option_specs_are_validated() -> None:
    parsed = ProgramOptions.parse("-n -e= -f=PATH --file=PATH --color[=] --lines=")
    assert dict(parsed.short) == {"n": "flag", "e": "value", "f": "path"}
    assert dict(parsed.long) == {"file": "path", "color": "optional", "lines": "value"}
    assert parsed.describe() == "-e VALUE -f PATH -n --color[=VALUE] --file=PATH --lines=VALUE"
    for bad in ("n", "-ab", "--x=FILE", "---x", "-=", "--"):
        with pytest.raises(ConfigurationError, match="ProgramOptions"):
            ProgramOptions.parse(bad)
    with pytest.raises(ConfigurationError, match="options_first"):
        ProgramOptions.parse("-n", options_first=True)
    with pytest.raises(ConfigurationError, match="ProgramOptions"):
        SandboxPolicy(options={"cat": "-n=FILE"})


def test_the_default_option_lists_cover_every_default_program_and_no_runner() -> None:
    assert set(DEFAULT_OPTIONS) == set(DEFAULT_PROGRAMS)
    forbidden = {"files0-from", "compress-program", "paginate", "set", "to-command", "exec", "no-preserve-root",
                 "keep-directory-symlink"}
    for program, options in DEFAULT_OPTIONS.items():
        assert not forbidden & set(options.long), program
    assert "check" not in DEFAULT_OPTIONS["md5sum"].long and "check" not in DEFAULT_OPTIONS["sha256sum"].long
    for program in ("cp", "mv", "mkdir"):  # backup suffixes can hold a '/'; SELinux contexts are not ours to set
        assert not {"suffix", "context"} & set(DEFAULT_OPTIONS[program].long), program
    assert "c" not in DEFAULT_OPTIONS["md5sum"].short and "c" not in DEFAULT_OPTIONS["sha256sum"].short
    assert "l" not in DEFAULT_OPTIONS["diff"].short and "s" not in DEFAULT_OPTIONS["date"].short
    assert "S" not in DEFAULT_OPTIONS["cp"].short


def _host_program(program: str) -> str | None:
    found, _missing = resolve_programs((program,))
    return found.get(program)


# Options that print help or a version and exit before reading the rest of their argument.
_EXITS_AT_ONCE = {("diff", "v"), ("grep", "V"), ("rev", "h"), ("rev", "V")}


@pytest.mark.parametrize("program", sorted(set(DEFAULT_OPTIONS) - {"echo", "printf", "true", "false"}))
def test_the_host_s_programs_take_no_value_where_the_list_says_flag(program: str, tmp_path: Path) -> None:
    """A letter listed as a flag that really takes a value would let ``-X/etc/x`` through unchecked:
    ask the real program. Followed by ``%`` (no program's option), a flag leaves ``%`` to be refused
    as an unknown option; a letter that takes a value would swallow it."""
    path = _host_program(program)
    if path is None:
        pytest.skip(f"{program} is not installed here")
    for letter, kind in DEFAULT_OPTIONS[program].short.items():
        if kind != "flag" or (program, letter) in _EXITS_AT_ONCE:
            continue
        done = subprocess.run([path, f"-{letter}%", "x"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL, cwd=tmp_path, env={"LC_ALL": "C", "PATH": SAFE_PATH},
                              check=False)
        assert "option -- '%'" in done.stderr, (program, letter, done.stderr)


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
