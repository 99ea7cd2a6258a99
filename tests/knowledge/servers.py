"""Private servers for the knowledge tests: a clamd with a signature database the test writes, and a
PostgreSQL 16 with pgvector from the ``pgserver`` wheel's binaries (Debian 12 packages no pgvector).

Each runs from a fresh directory on a free loopback port and is stopped by the fixture that started it.
A missing binary skips the test (fails it under CI=true). PostgreSQL refuses to run as root, so as root
the server runs as ``nobody`` (its data directory is made for that user).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services import free_port, log_tail, stop_group, unavailable

__all__ = ["MALWARE", "SIGNATURE", "ClamdServer", "PgvectorServer", "clamd_server", "pgvector_server"]

MALWARE = b"AGENTADAPTER-TEST-MALWARE-7f3a"
"""Bytes the test signature matches anywhere in a file."""
SIGNATURE = "AgentAdapter.Test.Signature"


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_group(process)
                unavailable(f"{what} on port {port} did not start:\n{log_tail(log)}")
            time.sleep(0.1)  # a server that is starting: nothing to wait on but its port


@dataclass
class ClamdServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"


@pytest.fixture
def clamd_server(tmp_path: Path) -> Iterator[ClamdServer]:
    """A clamd whose only signature matches :data:`MALWARE`."""
    binary = shutil.which("clamd") or ("/usr/sbin/clamd" if Path("/usr/sbin/clamd").exists() else None)
    if binary is None:
        unavailable("clamd is not installed (this test starts a private one): apt-get install clamav-daemon")
    database = tmp_path / "clamav"
    database.mkdir()
    (database / "test.ndb").write_text(f"{SIGNATURE}:0:*:{MALWARE.hex()}\n")
    port = free_port()
    config = tmp_path / "clamd.conf"
    log = tmp_path / "clamd.log"
    config.write_text(f"Foreground yes\nDatabaseDirectory {database}\nTCPSocket {port}\nTCPAddr 127.0.0.1\n"
                      f"LogFile {log}\n")
    with (tmp_path / "clamd.out").open("ab") as output:
        process = subprocess.Popen([str(binary), "-c", str(config)], stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_port(port, process, tmp_path / "clamd.out", "a private clamd")
        yield ClamdServer(port, process)
    finally:
        stop_group(process)


@dataclass
class PgvectorServer:
    port: int
    process: subprocess.Popen[bytes]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def _pgserver_bin() -> Path | None:
    import importlib.util

    # The wheel's binaries only: its Python side (which changes users and modes) is never imported.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[PgvectorServer]:
    """PostgreSQL 16 with the vector extension available, on a free port, for the session."""
    binaries = _pgserver_bin()
    if binaries is None:
        unavailable("pgserver (PostgreSQL with pgvector in a wheel) is not installed: pip install pgserver "
                    "(the dev extra has it)")
    directory = Path(tempfile.mkdtemp(prefix="agentadapter-pgvector-"))
    data = directory / "data"
    data.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(directory, "nobody", "nogroup")
        shutil.chown(data, "nobody", "nogroup")
        directory.chmod(0o755)
    user = "nobody" if as_root else None
    log = directory / "server.log"
    initdb = subprocess.run([str(binaries / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "utf8"],
                            capture_output=True, user=user, check=False)
    if initdb.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        unavailable(f"initdb of a private PostgreSQL failed: {initdb.stderr.decode(errors='replace')[-2000:]}")
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(directory),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True, user=user)
    try:
        _wait_port(port, process, log, "a private PostgreSQL with pgvector")
        yield PgvectorServer(port, process)
    finally:
        stop_group(process)
        shutil.rmtree(directory, ignore_errors=True)
