"""The local journal: append-only files that hold records on their way to the database.

Every usage record and credit charge of the service is appended here (one JSON line, one ``write``
to the operating system) before the call that produced it answers, and stays until the writer
(:mod:`agentadapter.store.writer`) has committed it. A process that dies - killed, out of memory, a
crash - leaves its journal behind, and the next process to start replays it into the database;
every record carries a unique id and the inserts skip ids already present, so a replay never writes
a record twice.

Layout: ``<root>/<instance>/<NNNNNNNN>.jsonl``, one directory per live process (``instance`` is
random), holding segments numbered from 1. The process keeps an exclusive ``flock`` on
``<instance>/owner.lock`` while it lives; the kernel drops it when the process ends however it
ends, so :func:`orphaned_instances` finds the directories of dead processes by taking that lock. A
segment is closed (:meth:`Journal.rotate`) every few seconds or megabytes and deleted once everything
in it is in the database.

What reaches the disk when is the operator's choice (``AGENTADAPTER_LEDGER_FSYNC``): a ``write`` is in
the operating system's page cache at once, so a killed process loses nothing; ``fsync`` decides what a
power cut or kernel crash can lose: ``always`` (after every record: nothing, at a price on every call),
``interval`` (the default: every ``AGENTADAPTER_LEDGER_FSYNC_INTERVAL_S``, 1 s: at most that long) or
``never`` (what the operating system has not written back yet, typically up to 30 s).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from agentadapter.llm.errors import ConfigurationError
from agentadapter.private_files import private_directory

__all__ = ["FsyncPolicy", "Journal", "database_id", "orphaned_instances", "read_segment", "segments"]

logger = logging.getLogger("agentadapter.store.journal")

FsyncPolicy = Literal["always", "interval", "never"]
FSYNC_POLICIES: tuple[str, ...] = ("always", "interval", "never")
_LOCK_NAME = "owner.lock"
_DATABASE_NAME = "database"
_SUFFIX = ".jsonl"


class Journal:
    """This process's journal directory: appends to the open segment, rotation, removal of written ones.

    Not thread-safe by itself: the writer calls every method under its own lock.
    """

    def __init__(self, root: Path, *, fsync: FsyncPolicy = "interval", database: str = "") -> None:
        if fsync not in FSYNC_POLICIES:
            raise ConfigurationError(
                f"AGENTADAPTER_LEDGER_FSYNC={fsync!r} is not a policy; use always, interval or never")
        self.root = root
        self.fsync = fsync
        self.database = database
        """Which database the records are for (:func:`database_id`): only its writers replay them."""
        self.directory = root / uuid.uuid4().hex
        self.segment = 0
        """The number of the open segment (0 before :meth:`open`)."""
        self.segment_bytes = 0
        self.segment_opened = 0.0
        self._fd = -1
        self._lock_fd = -1
        self._unsynced = False

    def open(self) -> None:
        """Create this process's directory, take its owner lock and open segment 1."""
        try:
            private_directory(self.root, tighten=False)
            private_directory(self.directory)
            self._lock_fd = os.open(self.directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            (self.directory / _DATABASE_NAME).write_text(self.database)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot use the ledger journal directory {self.root} ({exc.strerror or exc}); set "
                "AGENTADAPTER_LEDGER_DIR to a writable local directory"
            ) from exc
        self._open_segment(1)

    def _open_segment(self, number: int) -> None:
        self.segment = number
        self._fd = os.open(self.path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.segment_bytes = 0
        self.segment_opened = time.monotonic()

    def path(self, number: int) -> Path:
        return self.directory / f"{number:08d}{_SUFFIX}"

    def append(self, data: bytes) -> None:
        """Append one record (a JSON line); in the page cache when this returns, on disk per the policy."""
        written = os.write(self._fd, data)
        while written < len(data):  # a regular file takes it whole unless the disk is full
            more = os.write(self._fd, data[written:])
            if more <= 0:
                raise OSError(f"could not append to {self.path(self.segment)}")
            written += more
        self.segment_bytes += len(data)
        if self.fsync == "always":
            os.fsync(self._fd)
        else:
            self._unsynced = True

    def sync(self) -> None:
        """``fsync`` what was appended since the last sync (the ``interval`` policy's tick)."""
        if self._unsynced and self._fd >= 0 and self.fsync != "never":
            self._unsynced = False
            os.fsync(self._fd)

    def rotate(self) -> int:
        """Close the open segment and open the next; returns the closed segment's number."""
        closed = self.segment
        self._close_segment()
        self._open_segment(closed + 1)
        return closed

    def _close_segment(self) -> None:
        if self._fd >= 0:
            if self.fsync != "never":
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._unsynced = False

    def remove(self, number: int) -> None:
        """Delete a segment whose records are all in the database."""
        with contextlib.suppress(FileNotFoundError):
            self.path(number).unlink()

    def close(self, *, empty: bool) -> None:
        """Close the open segment; with ``empty`` (everything written) delete the directory too."""
        self._close_segment()
        if empty:
            self.remove(self.segment)
            shutil.rmtree(self.directory, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the owner lock
            self._lock_fd = -1


def database_id(url: str) -> str:
    """A database's identity in a journal directory (a hash of its URL without the password), so that
    two services sharing a data dir never replay each other's records into the wrong database."""
    from sqlalchemy.engine import make_url

    rendered = make_url(url).render_as_string(hide_password=True)
    return hashlib.sha256(rendered.encode()).hexdigest()[:32]


def orphaned_instances(root: Path, database: str = "") -> Iterator[tuple[Path, int]]:
    """The journal directories under ``root`` for ``database`` whose process is gone, each locked by this
    process while the caller replays it: yields ``(directory, lock_fd)``; the caller deletes the
    directory when done (closing ``lock_fd``), or closes ``lock_fd`` to leave it for later."""
    if not root.is_dir():
        return
    for directory in sorted(root.iterdir()):
        lock_path = directory / _LOCK_NAME
        if not directory.is_dir() or not lock_path.exists():
            continue
        try:
            owner = (directory / _DATABASE_NAME).read_text()
        except OSError:
            owner = ""  # killed between taking its lock and naming its database: it journaled nothing
        if owner and owner != database:
            continue  # another service's journal (a data dir shared by two databases)
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # its process is alive (or another process is replaying it)
            continue
        yield directory, fd


def segments(directory: Path) -> list[Path]:
    """A journal directory's segments, oldest first."""
    return sorted(p for p in directory.iterdir() if p.suffix == _SUFFIX)


def read_segment(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of a segment, and how many lines could not be read (a line torn by a crash mid-write,
    which belongs to a call that was never answered)."""
    records: list[dict[str, Any]] = []
    torn = 0
    with path.open("rb") as file:
        for line in file:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                torn += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                torn += 1
    return records, torn
