"""The SQLite store's housekeeping: it indexes queued messages for search and copies its
write-ahead log into the database file (checkpoints) on its thread, between batches; a
commit on the event loop never does either."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import chatkeep
from chatkeep import NewMessage
from chatkeep.stores import sqlite_index
from chatkeep.stores.local import LocalStore
from chatkeep.stores.sqlite_setup import CHECKPOINT_CHANGES, PAGE_SIZE

CONTENT = "a chat turn of about two hundred bytes " * 5
LONG = CONTENT * 5


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def test_checkpoints_run_on_the_thread_and_commits_on_the_loop_copy_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}?synchronous=normal&writer=loop"
    async with chatkeep.open_store(url) as store:
        assert isinstance(store, LocalStore)
        backend: Any = store._backend
        commit, checkpoint = backend.commit, backend._checkpoint
        grew_in_commit: list[int] = []
        checkpoints: list[tuple[int, int]] = []

        def noted_commit() -> None:
            before = size(db)
            commit()
            if size(db) != before:
                grew_in_commit.append(size(db) - before)

        def noted_checkpoint() -> None:
            before = size(db)
            checkpoint()
            checkpoints.append((threading.get_ident(), size(db) - before))

        backend.commit, backend._checkpoint = noted_commit, noted_checkpoint
        session = await store.create_session(max_messages=10_000)
        appends = 3 * CHECKPOINT_CHANGES // 2
        for n in range(appends):
            # about 1 KB each: SQLite's own checkpoint would come before the store's
            await store.append_messages(session.id, NewMessage(role="user", content=f"{n} {LONG}"))
        assert len(checkpoints) >= 2
        assert threading.get_ident() not in {thread for thread, _ in checkpoints}
        assert all(grown > 0 for _, grown in checkpoints[:1]), "the first one copied pages"
        assert grew_in_commit == [], "no commit copied the log into the file"
        stored = await store.get_messages(session.id)
        assert [m.content for m in stored] == [f"{n} {LONG}" for n in range(appends)]


async def test_the_log_stays_as_short_as_with_automatic_checkpoints(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    async with chatkeep.open_store(f"sqlite:///{db}?synchronous=normal") as store:
        sessions = [await store.create_session(max_messages=100) for _ in range(20)]
        largest = 0
        for _ in range(60):
            for session in sessions:
                await store.append_messages(session.id, NewMessage(role="user", content=CONTENT))
            largest = max(largest, size(Path(f"{db}-wal")))
    # 1,200 appends write about 11,000 pages: without its checkpoints the log would
    # grow until SQLite's own (8,000 pages) takes over.
    assert largest <= 3_000 * PAGE_SIZE, f"the log reached {largest} bytes"
    async with chatkeep.open_store(f"sqlite:///{db}") as store:
        for session in sessions:
            assert len(await store.get_messages(session.id)) == 60


class FailingCheckpoints:
    """A connection whose checkpoints fail (a full or failing disk)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.refused = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if "wal_checkpoint" in sql:
            self.refused += 1
            raise sqlite3.OperationalError("disk I/O error")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def test_a_failed_checkpoint_is_logged_and_appends_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "s.db"
    async with chatkeep.open_store(f"sqlite:///{db}?synchronous=normal") as store:
        assert isinstance(store, LocalStore)
        backend: Any = store._backend
        failing = FailingCheckpoints(backend._conn)
        backend._conn = failing
        session = await store.create_session(max_messages=10_000)
        appends = CHECKPOINT_CHANGES
        with caplog.at_level(logging.WARNING, logger="chatkeep.stores.sqlite"):
            for n in range(appends):
                await store.append_messages(session.id, NewMessage(role="user", content=f"{n}"))
        assert failing.refused >= 1
        assert failing.refused <= appends // (CHECKPOINT_CHANGES // 4), "not retried every batch"
        assert "checkpoint failed (disk I/O error)" in caplog.text
        backend._conn = failing._conn
    async with chatkeep.open_store(f"sqlite:///{db}") as store:
        stored = await store.get_messages(session.id)
        assert [m.content for m in stored] == [f"{n}" for n in range(appends)]


async def test_queued_messages_are_indexed_on_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_index, "BATCH", 5)
    url = f"sqlite:///{tmp_path}/s.db?synchronous=normal&writer=loop"
    async with chatkeep.open_store(url) as store:
        assert isinstance(store, LocalStore)
        index: Any = store._backend._index  # type: ignore[attr-defined]
        catch_up = index.catch_up
        threads: list[int] = []

        def noted() -> int:
            threads.append(threading.get_ident())
            return int(catch_up())

        index.catch_up = noted
        session = await store.create_session()
        for n in range(12):
            await store.append_messages(session.id, NewMessage(role="user", content=f"word{n}"))
        assert len(threads) == 2, "indexed after the 5th and the 10th"
        assert threading.get_ident() not in threads
        assert index.queued == 2
        hits = await store.search_sessions("word11")
        assert [m.seq for m in hits[0].messages] == [12]


async def test_failed_indexing_is_logged_and_the_next_search_indexes_the_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sqlite_index, "BATCH", 5)
    async with chatkeep.open_store(f"sqlite:///{tmp_path}/s.db?synchronous=normal") as store:
        assert isinstance(store, LocalStore)
        index: Any = store._backend._index  # type: ignore[attr-defined]
        catch_up = index.catch_up
        failures: list[int] = []

        def failing() -> int:
            if not failures:
                failures.append(1)
                raise sqlite3.OperationalError("database or disk is full")
            return int(catch_up())

        index.catch_up = failing
        session = await store.create_session()
        with caplog.at_level(logging.WARNING, logger="chatkeep.stores.sqlite"):
            for n in range(7):
                await store.append_messages(session.id, NewMessage(role="user", content=f"w{n}"))
        assert failures == [1]
        assert "indexing for search failed (database or disk is full)" in caplog.text
        assert index.queued == 2, "tried again only once as many more are queued"
        hits = await store.search_sessions("w0")
        assert [m.seq for m in hits[0].messages] == [1]
        assert len(await store.get_messages(session.id)) == 7
