"""Private brokers for the worker tests: a Redis server and a RabbitMQ node that belong to the test alone.

The machine's Redis and RabbitMQ are shared (by other test sessions, other projects, a developer's
cluster): a test that flushes a database, restarts a broker or registers a Celery node name there
breaks whoever else uses them. The worker tests need exactly those things - a clean broker, a broker
that goes away and comes back - so they start their own servers on free loopback ports, with their
data, logs and Erlang cookie in a temporary directory, and stop them (the whole process group) in the
fixture finalizer. When the server binaries are missing, or a RabbitMQ node does not come up in
time, the tests that need one are skipped with the reason (failed under ``CI=true``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services import PrivateRedis, free_port, log_tail, start_redis, stop_group, unavailable

#: Where the RabbitMQ scripts are; run directly, not through the /usr/sbin wrappers, which switch to the
#: ``rabbitmq`` user (and so lose this node's environment) when called as root.
RABBITMQ_BIN = Path(os.environ.get("AGENTADAPTER_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
RABBITMQ_START_S = 90.0
"""How long a private RabbitMQ node may take to accept AMQP connections (a few seconds usually)."""


def unique_node_name(kind: str = "aa-test") -> str:
    """A Celery node name no other worker on any broker uses (``%h`` is expanded by Celery to the host)."""
    return f"{kind}-{uuid.uuid4().hex[:10]}@%h"


# ---------------------------------------------------------------------------------------------- Redis


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A Redis server for this test module alone (nothing else on the machine sees its keys)."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        stop_group(server.process)


# ------------------------------------------------------------------------------------------- RabbitMQ


@dataclass
class PrivateRabbitMQ:
    """A RabbitMQ node of its own (own name, ports, epmd, cookie, data): it may be restarted and stopped
    without touching any other node on the machine."""

    node: str
    port: int
    epmd_port: int
    directory: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "rabbitmq-server.log"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -n <this node> ...``; raises with its output when it fails."""
        done = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.node} exited with {done.returncode}: "
                               f"{done.stdout}{done.stderr}")
        return done

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env,
                                            cwd=self.directory, stdout=output, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def accepts_amqp(self) -> bool:
        """True once a client can open an AMQP connection (the node booted and its listener is up)."""
        from kombu.connection import Connection

        try:
            with Connection(self.url, connect_timeout=1.0) as connection:  # type: ignore[no-untyped-call]
                connection.connect()
            return True
        except OSError:
            return False
        except Exception as exc:  # amqp's own errors (handshake refused while booting) - not up yet
            if type(exc).__module__.startswith(("amqp", "kombu")):
                return False
            raise

    def wait_until_up(self, within_s: float) -> str | None:
        """None when the node accepts AMQP connections, else why not (it exited, or it took too long)."""
        deadline = time.monotonic() + within_s
        while not self.accepts_amqp():
            if self.process is not None and self.process.poll() is not None:
                return f"rabbitmq-server exited with {self.process.returncode}"
            if time.monotonic() > deadline:
                return f"it did not accept AMQP connections within {within_s:.0f} s"
            time.sleep(0.2)  # booting: nothing to wait on but its port
        return None

    def restart_app(self) -> None:
        """Stop and start the RabbitMQ application of this node (the Erlang VM stays): every client is
        disconnected, non-durable state is lost, durable queues come back."""
        self.ctl("stop_app")
        self.ctl("start_app")
        problem = self.wait_until_up(RABBITMQ_START_S)
        assert problem is None, f"the private RabbitMQ node did not come back: {problem}\n{log_tail(self.log)}"

    def stop(self) -> None:
        """Stop the node, then its process group, then its private epmd (a daemon outside the group)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                self.ctl("stop", timeout=60)
            stop_group(self.process)
        epmd = shutil.which("epmd", path=f"{os.environ.get('PATH', '')}:/usr/lib/erlang/bin")
        if epmd is not None:
            subprocess.run([epmd, "-kill"], env=self.env, capture_output=True, timeout=20, check=False)


def rabbitmq_node(directory: Path) -> PrivateRabbitMQ:
    """A node's configuration in ``directory`` (not started): loopback only, management plugin off."""
    name = f"aa-test-{uuid.uuid4().hex[:10]}@localhost"
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    home = directory / "home"
    home.mkdir()
    cookie = home / ".erlang.cookie"  # rabbitmq-server and rabbitmqctl both read $HOME/.erlang.cookie
    cookie.write_text(uuid.uuid4().hex)
    cookie.chmod(0o400)
    (directory / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users.guest = true\n")
    (directory / "enabled_plugins").write_text("[].\n")
    (directory / "rabbitmq-env.conf").write_text(  # instead of /etc/rabbitmq/rabbitmq-env.conf
        "ERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS=\"-kernel inet_dist_use_interface {127,0,0,1}\"\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RABBITMQ_", "ERL_"))}
    env.update(
        HOME=str(home), RABBITMQ_NODENAME=name, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(dist_port), ERL_EPMD_PORT=str(epmd_port), ERL_EPMD_ADDRESS="127.0.0.1",
        RABBITMQ_MNESIA_BASE=str(directory / "mnesia"), RABBITMQ_LOG_BASE=str(directory / "log"),
        RABBITMQ_CONFIG_FILE=str(directory / "rabbitmq.conf"),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(directory / "advanced.config"),
        RABBITMQ_CONF_ENV_FILE=str(directory / "rabbitmq-env.conf"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(directory / "enabled_plugins"),
        RABBITMQ_PID_FILE=str(directory / "rabbitmq.pid"),
    )
    return PrivateRabbitMQ(name, port, epmd_port, directory, env)


@pytest.fixture
def private_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node for this test alone, accepting AMQP connections; stopped (and its epmd) afterwards."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists() or not (RABBITMQ_BIN / "rabbitmqctl").exists():
        unavailable(f"RabbitMQ is not installed in {RABBITMQ_BIN} (set AGENTADAPTER_TEST_RABBITMQ_BIN to the "
                    "directory holding rabbitmq-server and rabbitmqctl)")
    node = rabbitmq_node(tmp_path_factory.mktemp("rabbitmq"))
    try:
        node.start()
        problem = node.wait_until_up(RABBITMQ_START_S)
        if problem is not None:
            unavailable(f"a private RabbitMQ node ({node.node}) could not be started: {problem}\n{log_tail(node.log)}")
        yield node
    finally:
        node.stop()
