"""A separate process holding a shell workspace, driven line by line (for test_sandbox_uids.py).

``python uid_holder.py FIRST LAST [LOCK_DIR]`` prepares a workspace and prints its uid as JSON;
then, on stdin, ``run`` starts ``sleep 300`` in it and answers ``running`` once the command's
process exists, and ``stop`` (or the end of stdin) cancels the command, closes the shell (killing
every process of its uid) and answers ``stopped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys

from agentadapter.agents import AgentContext, LLMAgent
from agentadapter.agents.tools.audit import InMemoryToolAudit
from agentadapter.agents.tools.sandbox import SandboxPolicy, pids_of_uid
from agentadapter.agents.tools.shell import Shell


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def until_running(uid: int, command: asyncio.Task[object]) -> None:
    async with asyncio.timeout(30):
        while not pids_of_uid(uid):
            if command.done():
                raise RuntimeError(f"the command ended before it was seen running: {command.result()!r}")
            await asyncio.sleep(0.01)  # /proc has no event for a new process of a uid


async def main(first: int, last: int, lock_dir: str | None) -> None:
    policy = SandboxPolicy(programs=("sleep",), uid_range=(first, last), uid_lock_dir=lock_dir, wall_time_s=300)
    shell = Shell(policy, audit=InMemoryToolAudit())
    uid = os.stat(await shell.prepare("run")).st_uid
    say(json.dumps({"uid": uid}))
    command: asyncio.Task[object] | None = None
    try:
        while (line := (await asyncio.to_thread(sys.stdin.readline)).strip()) not in ("", "stop"):
            if line == "run":
                context = AgentContext(LLMAgent("holder"), run_id="run")
                command = asyncio.create_task(shell.run("sleep 300", context=context))
                await until_running(uid, command)
                say("running")
    finally:
        if command is not None:
            command.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await command
        await shell.close()
    say("stopped")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
