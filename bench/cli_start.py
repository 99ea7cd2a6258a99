"""How long the operator's commands take from start to exit on a database that is already migrated.

Each command runs ``--runs`` times as a fresh process (``python -m agentadapter.cli ...``, the
same app as the ``agentadapter`` script) against a SQLite database in a temporary data dir that is
migrated once, with a tenant to act on. The table shows each command's median wall time and median
CPU time (user + system of the child, which a busy machine inflates less than wall time), and the
ratio of its median wall time to the same run's baselines: ``python -c pass`` (the interpreter's own
start) and ``python -c "import agentadapter"``. The commands run interleaved, one round at a time,
so that a change in the machine's load reaches every row alike.

    .venv/bin/python bench/cli_start.py            # 7 runs of each command
    .venv/bin/python bench/cli_start.py --runs 15
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

PYTHON = sys.executable


@dataclass
class Case:
    """One row: the arguments of a run, made anew for each run (names that must be unique, ids to revoke)."""

    label: str
    argv: Callable[[int], list[str]]
    stdin: Callable[[int], str] | None = None
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


def cli(*args: str) -> list[str]:
    return [PYTHON, "-m", "agentadapter.cli", *args]


def run(argv: list[str], env: dict[str, str], stdin: str | None = None) -> tuple[float, float, str]:
    """Run ``argv`` to its exit; its wall time and CPU time in ms, and its stdout. A failure stops the bench."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, check=False)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[3:]) or argv}: exit {done.returncode}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (the median is shown)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cli-start-") as data_dir:
        env = {
            **os.environ,
            "AGENTADAPTER_DATA_DIR": data_dir,
            "AGENTADAPTER_ENV": "development",
            "PYTHONDONTWRITEBYTECODE": "",
            "COLUMNS": "100",
        }
        for name in ("AGENTADAPTER_DATABASE_URL", "AGENTADAPTER_REDIS_URL", "AGENTADAPTER_LOG_FORMAT"):
            env.pop(name, None)
        run(cli("db", "upgrade"), env)  # migrated once, as after the first command on a data dir
        run(cli("tenants", "create", "bench"), env)
        run(cli("credits", "add", "--tenant", "bench", "5"), env)
        # Keys to revoke, one per run, made before timing starts.
        revocable = [run(cli("keys", "create", "--tenant", "bench", "--json"), env)[2] for _ in range(args.runs)]
        import json

        revoke_ids = [json.loads(line)["id"] for line in revocable]
        unique = itertools.count()

        cases = [
            Case("python -c pass", lambda i: [PYTHON, "-c", "pass"]),
            Case('python -c "import agentadapter"', lambda i: [PYTHON, "-c", "import agentadapter"]),
            Case("agentadapter --version", lambda i: cli("--version")),
            Case("agentadapter -h", lambda i: cli("-h")),
            Case("tenants list", lambda i: cli("tenants", "list")),
            Case("tenants create NAME", lambda i: cli("tenants", "create", f"t{os.getpid()}-{next(unique)}")),
            Case("keys create", lambda i: cli("keys", "create", "--tenant", "bench")),
            Case("keys list", lambda i: cli("keys", "list", "--tenant", "bench")),
            Case("keys revoke ID", lambda i: cli("keys", "revoke", revoke_ids[i], "--tenant", "bench")),
            Case("credits add", lambda i: cli("credits", "add", "--tenant", "bench", "1")),
            Case("credits show", lambda i: cli("credits", "show", "--tenant", "bench")),
            Case(
                "provider-keys set",
                lambda i: cli("provider-keys", "set", "-t", "bench", "-p", "openai"),
                stdin=lambda i: f"sk-bench-{i:04d}-0123456789\n",
            ),
            Case("provider-keys list", lambda i: cli("provider-keys", "list", "-t", "bench")),
        ]
        run(cli("--version"), env)  # bytecode compiled before the first timed run
        for i in range(args.runs):
            for case in cases:
                wall, cpu, _ = run(case.argv(i), env, case.stdin(i) if case.stdin else None)
                case.wall_ms.append(wall)
                case.cpu_ms.append(cpu)

    base = statistics.median(cases[0].wall_ms)
    package = statistics.median(cases[1].wall_ms)
    load = os.getloadavg()[0]
    print(
        f"CLI start to exit, migrated SQLite database, median of {args.runs} runs "
        f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.1f} at the end)\n"
    )
    header = f"{'command':<34} {'wall ms':>8} {'cpu ms':>8} {'x pass':>7} {'x import':>9}"
    print(header)
    print("-" * len(header))
    for case in cases:
        wall = statistics.median(case.wall_ms)
        cpu = statistics.median(case.cpu_ms)
        print(f"{case.label:<34} {wall:>8.0f} {cpu:>8.0f} {wall / base:>7.1f} {wall / package:>9.1f}")


if __name__ == "__main__":
    main()
