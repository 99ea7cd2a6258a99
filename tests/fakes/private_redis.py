"""A redis-server of one test, which the test kills and restarts (the shared Redis never is).

It persists every write (``appendfsync always``) in the test's directory, so a restart after a
kill - an abrupt crash - finds the data as it was, as a production Redis with AOF would.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

__all__ = ["PrivateRedis"]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(directory)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                return process
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise RuntimeError("the private redis-server did not start") from None
                time.sleep(0.05)
    finally:
        client.close()


class PrivateRedis:
    """A redis-server of one test (persisting every write, so a restart keeps the data): stop, start."""

    def __init__(self, directory: Path) -> None:
        self.port = _port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = _start_redis(self.port, directory)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # abrupt, as a crash: appendfsync always has the data on disk
            self.process.wait(timeout=10)
            self.process = None

    def start(self) -> None:
        if self.process is None:
            self.process = _start_redis(self.port, self.directory)
