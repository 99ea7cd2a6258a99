"""Files only the server's own user may read: the data directory, the SQLite files in it.

The data directory (``AGENTADAPTER_DATA_DIR``) holds the SQLite database (tenants, runs, encrypted
provider keys, API key hashes) and the response cache; the shell sandbox runs commands as other
users on the same machine, and other local accounts exist too. So the directory is made mode
0700 and the database files 0600, set explicitly (``os.open``'s mode, then ``chmod``) so that the
process's umask cannot loosen them. A directory or file of this user found with looser rights is
tightened; one that belongs to another user is left alone, and a warning logged, since changing
someone else's rights is not ours to do (and root's ``chmod`` would succeed where it should not).
SQLite creates a database's ``-wal``, ``-shm`` and ``-journal`` files with the database file's own
mode, so a private database file keeps them private too; existing ones are tightened as well.

Used by :mod:`agentadapter.store.database` and :mod:`agentadapter.llm.policy.cache`; it imports
nothing from the rest of the package but logging.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from agentadapter.observability.logging import get_logger

__all__ = ["DIRECTORY_MODE", "FILE_MODE", "private_directory", "private_sqlite_file"]

logger = get_logger("agentadapter.files")

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int, what: str) -> None:
    """``chmod`` ``path`` to ``mode`` if it is ours and looser; warn if it is someone else's."""
    info = path.stat()
    if stat.S_IMODE(info.st_mode) & ~mode == 0:
        return
    if info.st_uid != os.geteuid():
        logger.warning(
            "%s %s is readable by others (mode %o) and belongs to uid %s, not to this process's user; it is left "
            "as it is: make it mode %o (chmod %o %s) so that other users cannot read it",
            what, path, stat.S_IMODE(info.st_mode), info.st_uid, mode, mode, path,
            extra={"path": str(path), "mode": oct(stat.S_IMODE(info.st_mode))},
        )
        return
    path.chmod(mode)


def private_directory(path: Path, *, tighten: bool = True) -> Path:
    """Create ``path`` (and missing parents, each mode 0700) and return it. An existing directory is
    tightened to 0700 when ``tighten`` (the data directory), else left as it is (the parent of a
    database file named in a URL, which may be shared)."""
    missing = [parent for parent in (path, *path.parents) if not parent.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            directory.mkdir(mode=DIRECTORY_MODE)
            directory.chmod(DIRECTORY_MODE)  # mkdir's mode is masked by the umask
    if tighten and path not in missing:
        _tighten(path, DIRECTORY_MODE, "the data directory")
    return path


def private_sqlite_file(path: Path) -> Path:
    """Create the SQLite database file ``path`` empty, mode 0600, if it does not exist (SQLite takes an
    empty file for an empty database), and tighten an existing one and its -wal/-shm/-journal files."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE, "the database file")
    else:
        try:
            os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is masked by the umask too
        finally:
            os.close(fd)
    for suffix in _SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            _tighten(companion, FILE_MODE, "the database file")
    return path
