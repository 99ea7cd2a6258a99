"""Sandbox uids leased across processes: two real processes holding workspaces at once get distinct
uids, one's cleanup never kills the other's command, and a dead holder's uid is freed by the kernel.

Per-workspace uids exist only when running as root; these tests skip otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentadapter.agents import AgentContext, LLMAgent
from agentadapter.agents.tools.audit import InMemoryToolAudit
from agentadapter.agents.tools.errors import CommandRefused
from agentadapter.agents.tools.sandbox import SandboxPolicy, kill_uid, pids_of_uid
from agentadapter.agents.tools.sandbox_uids import UidLeases, default_lock_dir
from agentadapter.agents.tools.shell import Shell

from .test_shell import usable_uid_range

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="workspaces get their own uid only when run as root")

HOLDER = Path(__file__).with_name("uid_holder.py")
# Far from the start of the range, where test_shell.py's workspaces take their uids.
OFFSET = 200


class Holder:
    """A uid_holder.py process: a workspace held in another process."""

    def __init__(self, first: int, last: int, lock_dir: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HOLDER), str(first), str(last), lock_dir], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        self.uid: int = json.loads(self.read())["uid"]

    def read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the holder exited early (exit code {self.process.poll()})"
        return line.strip()

    def ask(self, command: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture
async def uid_range() -> tuple[int, int]:
    usable = await usable_uid_range()
    assert usable is not None  # root: a range, or the test was skipped
    first = usable[0] + OFFSET
    return first, first + 1


@pytest.fixture
def holders(uid_range: tuple[int, int]) -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.stop()
    for uid in range(uid_range[0], uid_range[1] + 1):  # whatever a killed holder left running
        for pid in pids_of_uid(uid):
            os.kill(pid, 9)


async def test_two_processes_get_distinct_uids_and_never_kill_each_other(uid_range: tuple[int, int],
                                                                          holders: list[Holder]) -> None:
    lock_dir = default_lock_dir()  # the machine-wide one, as in production
    first, last = uid_range
    holders.append(Holder(first, last, lock_dir))
    holders.append(Holder(first, last, lock_dir))
    a, b = holders
    assert a.uid != b.uid and {a.uid, b.uid} == {first, last}
    # Every uid of the range is held elsewhere: this process gets none.
    assert UidLeases(first, last, lock_dir).acquire() is None

    assert a.ask("run") == "running" and b.ask("run") == "running"
    assert pids_of_uid(a.uid) and pids_of_uid(b.uid)
    assert b.ask("stop") == "stopped"  # b's cleanup kills every process of b's uid...
    b.process.wait(timeout=30)
    assert pids_of_uid(b.uid) == []
    assert pids_of_uid(a.uid)  # ...and none of a's

    # A holder that dies without cleaning up: the kernel drops its lock; its command is orphaned.
    a.process.kill()
    a.process.wait(timeout=30)
    orphans = pids_of_uid(a.uid)
    assert orphans
    shell = Shell(SandboxPolicy(programs=("echo",), uid_range=(a.uid, a.uid), uid_lock_dir=lock_dir),
                  audit=InMemoryToolAudit())
    try:
        result = await shell.run("echo mine", context=AgentContext(LLMAgent("next"), run_id="r"))
        assert result.stdout == "mine\n" and result.sandbox["uid"] == a.uid
        assert not set(orphans) & set(pids_of_uid(a.uid))  # the next holder started with a clean slate
    finally:
        await shell.close()


async def test_a_lease_is_exclusive_and_freed_on_release(uid_range: tuple[int, int], tmp_path: Path) -> None:
    first, last = uid_range
    leases = UidLeases(first, last, str(tmp_path / "locks"))
    one, two = leases.acquire(), leases.acquire()
    assert one is not None and two is not None and one.uid != two.uid
    assert leases.acquire() is None
    assert UidLeases(first, last, str(tmp_path / "locks")).acquire() is None  # another pool, same files
    one.release()
    again = leases.acquire()
    assert again is not None and again.uid == one.uid and not one.held
    for lease in (two, again):
        lease.release()
    assert (tmp_path / "locks").stat().st_mode & 0o777 == 0o700
    await kill_uid(first)  # nothing ran; harmless


def test_a_lock_directory_that_is_not_ours_is_refused(uid_range: tuple[int, int], tmp_path: Path) -> None:
    first, last = uid_range
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    lease = UidLeases(first, last, str(loose)).acquire()
    assert lease is not None
    lease.release()
    assert loose.stat().st_mode & 0o777 == 0o700  # tightened

    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, first, first)
    with pytest.raises(CommandRefused, match="not a directory of this user") as caught:
        UidLeases(first, last, str(foreign)).acquire()
    assert caught.value.reason == "sandbox_setup"

    link = tmp_path / "link"
    link.symlink_to(loose, target_is_directory=True)
    with pytest.raises(CommandRefused, match="a symlink"):
        UidLeases(first, last, str(link)).acquire()
