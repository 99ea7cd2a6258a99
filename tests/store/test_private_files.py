"""The server's files are private: a data dir made through the normal code path is 0700, the SQLite
database and its -wal/-shm 0600 whatever the umask; looser ones of ours are tightened, and one that
belongs to another user is left alone with a warning."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from agentadapter.config import Settings
from agentadapter.llm.policy.cache import SQLiteCache, create_cache
from agentadapter.store import migrate
from agentadapter.store.database import Database, database_url


def settings(data_dir: Path) -> Settings:
    # database_url=None: the default SQLite file, whatever the environment says
    return Settings(data_dir=data_dir, database_url=None)  # type: ignore[call-arg]  # mypy misreads the aliases


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that masks nothing: modes must be set explicitly, not inherited."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


async def test_a_fresh_data_dir_and_database_are_private(tmp_path: Path, open_umask: None) -> None:
    fresh = settings(tmp_path / "new" / "data")
    db = Database(database_url(fresh))
    try:
        await migrate.upgrade(db)
        async with db.writer() as session:  # a write: the WAL and shared-memory files exist now
            await session.execute(sa.text("CREATE TABLE probe (x INTEGER)"))
            await session.execute(sa.text("INSERT INTO probe VALUES (1)"))
        data = fresh.data_dir
        assert mode(data) == 0o700 and mode(data.parent) == 0o700
        database = fresh.sqlite_path
        companions = [data / "agentadapter.db-wal", data / "agentadapter.db-shm"]
        assert all(path.exists() for path in companions)
        assert {path.name: mode(path) for path in [database, *companions]} == {
            "agentadapter.db": 0o600, "agentadapter.db-wal": 0o600, "agentadapter.db-shm": 0o600}
    finally:
        await db.dispose()


async def test_looser_files_of_ours_are_tightened(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o777)
    (data / "agentadapter.db").touch(mode=0o644)
    (data / "agentadapter.db-wal").touch(mode=0o666)
    database_url(settings(data))
    assert mode(data) == 0o700
    db = Database(f"sqlite:///{data / 'agentadapter.db'}")
    try:
        await db.ping()
        assert mode(data / "agentadapter.db") == 0o600
        assert not (data / "agentadapter.db-wal").exists() or mode(data / "agentadapter.db-wal") == 0o600
    finally:
        await db.dispose()


async def test_a_database_named_by_url_is_private_and_its_shared_parent_left_alone(tmp_path: Path,
                                                                                    open_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    db = Database(f"sqlite:///{shared / 'own' / 'app.db'}")
    try:
        await db.ping()
    finally:
        await db.dispose()
    assert mode(shared) == 0o755  # not ours to tighten
    assert mode(shared / "own") == 0o700 and mode(shared / "own" / "app.db") == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory of another user needs root")
def test_a_data_dir_of_another_user_is_left_as_it_is_with_a_warning(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "theirs"
    data.mkdir()
    data.chmod(0o755)
    os.chown(data, 65534, 65534)
    with caplog.at_level(logging.WARNING, logger="agentadapter.files"):
        database_url(settings(data))
    assert mode(data) == 0o755
    assert "belongs to uid 65534" in caplog.text and f"chmod 700 {data}" in caplog.text


def test_the_response_cache_file_is_private(tmp_path: Path, open_umask: None) -> None:
    cache = create_cache("sqlite", data_dir=tmp_path / "data", redis_url=None)
    assert isinstance(cache, SQLiteCache)
    assert mode(tmp_path / "data") == 0o700 and mode(cache.path) == 0o600
