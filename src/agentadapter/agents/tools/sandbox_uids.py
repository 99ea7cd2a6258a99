"""Sandbox uids, leased across every process of the machine.

Run as root, each shell workspace runs its commands as its own unprivileged uid from
``SandboxPolicy.uid_range``, and the end of each command kills every process of that uid. That is
safe only if no other process on the machine (a Celery prefork child, another ``serve --workers``
worker) uses the same uid at the same time: a per-process pool would hand the first uid of the
range to each of them, and one's cleanup would kill the other's commands. So a workspace holds a
:class:`UidLease`: an exclusive ``flock`` on ``<lock dir>/<uid>.lock``, taken without waiting (a
locked uid is skipped) and held as long as the workspace. The kernel releases it when the holder
closes it or dies, so a crashed worker never strands a uid, and the next holder kills whatever the
dead one left running.

The lock directory (``SandboxPolicy.uid_lock_dir``; by default ``/run/agentadapter-sandbox``, or
``<tempdir>/agentadapter-sandbox-uids`` where ``/run`` is not writable) must be a real directory
owned by this user: it is created mode 0700, looser rights are tightened, and a symlink or a
directory owned by someone else is refused, since whoever controls it could hold every uid.
Within one process, uids are handed out in turn (least recently released first), preferring uids
that own no process at all: the killed processes of a previous holder linger as zombies until
their parent reaps them, and they count for ``RLIMIT_NPROC``.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import stat
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

from agentadapter.agents.tools.errors import CommandRefused
from agentadapter.agents.tools.sandbox import uids_with_processes

__all__ = ["UidLease", "UidLeases", "default_lock_dir"]


def default_lock_dir() -> str:
    """``/run/agentadapter-sandbox`` where this process may create it, else one in the temp dir."""
    if os.access("/run", os.W_OK | os.X_OK):
        return "/run/agentadapter-sandbox"
    return str(Path(tempfile.gettempdir()) / "agentadapter-sandbox-uids")


def _private_lock_dir(path: str) -> str:
    """Create (or check) the lock directory: a real directory of ours, mode 0700."""
    with contextlib.suppress(FileExistsError):
        Path(path).mkdir(mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        owner = "a symlink" if stat.S_ISLNK(info.st_mode) else f"owned by uid {info.st_uid}"
        raise CommandRefused(
            f"the sandbox's uid lock directory {path!r} is not a directory of this user ({owner}); no sandbox "
            "uid can be leased safely. Remove it, or set SandboxPolicy.uid_lock_dir to a directory only this "
            "user can write", reason="sandbox_setup",
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        Path(path).chmod(0o700)
    return path


class UidLease:
    """One uid, held exclusively by this process until :meth:`release` (or the process's end)."""

    def __init__(self, uid: int, fd: int, on_release: Callable[[int], None]) -> None:
        self.uid = uid
        self._on_release = on_release
        # Closing the file drops the lock; the finalizer closes it even if the lease is just dropped.
        self._close = weakref.finalize(self, os.close, fd)

    @property
    def held(self) -> bool:
        return self._close.alive

    def release(self) -> None:
        if self._close.alive:
            self._close()
            self._on_release(self.uid)

    def __repr__(self) -> str:
        return f"UidLease(uid={self.uid}, held={self.held})"


class UidLeases:
    """The uids of one range, leased through lock files in one directory."""

    _instances: dict[tuple[int, int, str], UidLeases] = {}
    _instances_lock = threading.Lock()

    def __init__(self, first: int, last: int, lock_dir: str) -> None:
        self.first, self.last = first, last
        self.lock_dir = lock_dir
        self._order = collections.deque(range(first, last + 1))
        self._lock = threading.RLock()  # a lease released inside acquire() calls back into _released
        self._checked = False

    @classmethod
    def for_range(cls, uid_range: tuple[int, int], lock_dir: str | None = None) -> UidLeases:
        """The process's leases for a range (one object per range and directory)."""
        key = (*uid_range, lock_dir or default_lock_dir())
        with cls._instances_lock:
            leases = cls._instances.get(key)
            if leases is None:
                leases = cls._instances[key] = cls(*key)
            return leases

    def acquire(self) -> UidLease | None:
        """A uid no other holder on this machine has, or None when every uid of the range is held."""
        with self._lock:
            if not self._checked:
                _private_lock_dir(self.lock_dir)
                self._checked = True
            busy = uids_with_processes(self.first, self.last)
            fallback: UidLease | None = None
            for uid in list(self._order):
                lease = self._try(uid)
                if lease is None:
                    continue
                if uid not in busy:
                    if fallback is not None:
                        fallback.release()
                    self._to_back(uid)
                    return lease
                if fallback is None:
                    fallback = lease  # processes left by a dead holder: usable once killed
                else:
                    lease.release()
            if fallback is not None:
                self._to_back(fallback.uid)
            return fallback

    def _try(self, uid: int) -> UidLease | None:
        path = Path(self.lock_dir) / f"{uid}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None  # held by another process, or another workspace of this one
        except BaseException:
            os.close(fd)
            raise
        return UidLease(uid, fd, self._released)

    def _to_back(self, uid: int) -> None:
        with contextlib.suppress(ValueError):
            self._order.remove(uid)
        self._order.append(uid)

    def _released(self, uid: int) -> None:
        with self._lock:
            self._to_back(uid)
