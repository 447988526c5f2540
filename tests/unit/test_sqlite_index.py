"""The SQLite message search index, written after the messages: queued by each append,
indexed in batches and before every search, and never lost to a crash or an upgrade."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from listing_reference import NOW, make_session

import chatkeep
from chatkeep import Message, NewMessage, Role
from chatkeep.stores import sqlite_index
from chatkeep.stores.sqlite import SqliteBackend
from chatkeep.stores.sqlite_setup import SCHEMA_VERSION


def counts(path: Path) -> tuple[int, int, int]:
    """Messages, rows of the message index, and messages queued for it."""
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM message_search), "
            "(SELECT count(*) FROM message_search_queue)"
        ).fetchone()
    return row  # type: ignore[no-any-return]


def make_message(sid: str, seq: int, content: str) -> Message:
    return Message(f"{sid}-m{seq}", sid, seq, Role.USER, content, None, NOW, {})


def user(text: str) -> NewMessage:
    return NewMessage(role="user", content=text)


async def test_appended_messages_are_found_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        one, two = await store.create_session(), await store.create_session()
        await store.append_messages(one.id, [user("apple pie"), user("plain")])
        await store.append_messages(two.id, NewMessage(role="user", content={"fruit": "apple"}))
        await store.append_messages(two.id, NewMessage(role="user", content="", metadata={}))
        assert counts(path) == (4, 0, 4)
        hits = await store.search_sessions("apple")
        assert sorted(h.session.id for h in hits) == sorted([one.id, two.id])
        assert counts(path) == (4, 4, 0), "every message has its index row, words or not"
        await store.append_messages(one.id, user("apple crumble"))
        hits = await store.search_sessions("crumble")
        assert [(h.session.id, [m.seq for m in h.messages]) for h in hits] == [(one.id, [3])]


async def test_a_full_queue_is_indexed_after_the_batch_that_fills_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_index, "BATCH", 5)
    path = tmp_path / "s.db"
    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        session = await store.create_session()
        for i in range(4):
            await store.append_messages(session.id, user(f"word{i}"))
        assert counts(path) == (4, 0, 4)
        await store.append_messages(session.id, user("word4"))
        assert counts(path) == (5, 5, 0)
        await store.append_messages(session.id, [user("late"), user("later")])
        assert counts(path) == (7, 5, 2)
        async with store.transaction() as tx:  # one that fills the queue: indexed after it
            for n in range(3):
                await tx.append_messages(session.id, user(f"tx{n}"))
        assert counts(path) == (10, 10, 0)


async def test_a_rolled_back_append_leaves_nothing_queued(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    class Abandon(Exception):
        pass

    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        session = await store.create_session()
        with pytest.raises(Abandon):
            async with store.transaction() as tx:
                await tx.append_messages(session.id, user("never"))
                raise Abandon
        assert counts(path) == (0, 0, 0)
        await store.append_messages(session.id, user("kept"))
        assert [h.session.id for h in await store.search_sessions("kept")] == [session.id]
        assert await store.search_sessions("never") == []


def test_queued_messages_are_indexed_after_a_reopen(tmp_path: Path) -> None:
    """A writer that stops before indexing (a crash) leaves its queue in the file."""
    path = tmp_path / "s.db"

    async def write() -> str:
        async with chatkeep.open_store(f"sqlite:///{path}") as store:
            session = await store.create_session()
            await store.append_messages(session.id, [user("survivor"), user("other")])
            return session.id

    sid = asyncio.run(write())
    assert counts(path) == (2, 0, 2)

    async def search() -> list[str]:
        async with chatkeep.open_store(f"sqlite:///{path}") as store:
            health = await store.health()
            assert health.details["unindexed_messages"] == 2
            return [h.session.id for h in await store.search_sessions("survivor")]

    assert asyncio.run(search()) == [sid]
    assert counts(path) == (2, 2, 0)


async def test_optimize_indexes_the_queue_first(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        session = await store.create_session()
        await store.append_messages(session.id, user("hello there"))
        await store.optimize()
        assert counts(path) == (1, 1, 0)


async def test_doc_numbers_never_collide_with_indexed_or_queued_ones(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        session = await store.create_session(max_messages=4)
        await store.append_messages(session.id, [user(f"w{i}") for i in range(3)])
        assert await store.search_sessions("w1")
        await store.append_messages(session.id, [user("q1"), user("q2")])
        await store.append_messages(session.id, user("q3"))
        await store.pop_message(session.id)
    with sqlite3.connect(path) as conn:
        docs = sorted(row[0] for row in conn.execute("SELECT doc FROM messages"))
        assert docs == [3, 4, 5]
        assert conn.execute("SELECT doc FROM message_search_queue ORDER BY doc").fetchall() == [
            (4,),
            (5,),
        ]
    backend = SqliteBackend.open(str(path), {})
    try:
        index = backend._index
        assert index is not None
        backend.begin(True)
        assert (index.reserve(2), index.reserve(1)) == (6, 8)
        backend.rollback()
    finally:
        backend.close()


async def test_a_version_1_file_is_upgraded_and_keeps_its_index(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        session = await store.create_session()
        await store.append_messages(session.id, [user("older words"), user("")])
        assert await store.search_sessions("older")
    with sqlite3.connect(path) as conn:  # as version 1 left it: no queue; NULL: no words
        conn.execute("DROP TRIGGER messages_unqueue")
        conn.execute("DROP TABLE message_search_queue")
        conn.execute(
            "DELETE FROM message_search WHERE rowid = (SELECT doc FROM messages WHERE content = '')"
        )
        conn.execute("UPDATE messages SET doc = NULL WHERE content = ''")
        conn.execute("PRAGMA user_version = 1")
    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        await store.append_messages(session.id, user("newer words"))
        hits = await store.search_sessions("words")
        assert [[m.seq for m in h.messages] for h in hits] == [[3, 1]]
        assert await store.clear_messages(session.id) == 3
        assert await store.search_sessions("words") == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert counts(path) == (0, 0, 0)


def test_two_writers_of_one_file_never_share_a_doc_number(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    first, second = SqliteBackend.open(path, {}), SqliteBackend.open(path, {})
    try:
        session = make_session("shared")
        first.begin(True)
        first.put_session(session, new=True)
        first.commit()
        for round_, backend in enumerate([first, second, first, first, second]):
            backend.begin(True)
            seq = 2 * round_ + 1
            backend.insert_messages(
                "shared",
                [
                    make_message("shared", seq, f"w{seq}"),
                    make_message("shared", seq + 1, f"w{seq + 1}"),
                ],
            )
            backend.commit()
        with sqlite3.connect(path) as conn:
            docs = [row[0] for row in conn.execute("SELECT doc FROM messages ORDER BY seq")]
        assert docs == list(range(1, 11))
        second.begin(True)
        hits = second.search(["w7"], None, True, 10, NOW)
        second.commit()
        assert [[m.seq for m in h.messages] for h in hits] == [[7]]
    finally:
        first.close()
        second.close()


async def test_a_message_that_cannot_be_decoded_does_not_block_the_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        session = await store.create_session()
        await store.append_messages(session.id, NewMessage(role="user", content={"a": "broken"}))
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE messages SET content = '{not json' WHERE seq = 1")
        await store.append_messages(session.id, user("healthy words"))
        hits = await store.search_sessions("healthy")
        assert [[m.seq for m in h.messages] for h in hits] == [[2]]
        assert await store.search_sessions("broken") == []
        assert "message 1 of session" in caplog.text
        assert counts(path) == (2, 2, 0)
        await store.append_messages(session.id, user("after"))
        assert [h.session.id for h in await store.search_sessions("after")] == [session.id]


async def test_a_deleted_message_takes_only_its_own_index_row(tmp_path: Path) -> None:
    """Doc numbers are never handed out twice while a message holds one, even a message
    without words, also by a new connection: deleting a message must not take another
    message's index row or queue entry."""
    url = f"sqlite:///{tmp_path}/s.db"
    async with chatkeep.open_store(url) as store:
        session = await store.create_session(max_messages=2)
        await store.append_messages(session.id, [user("alpha"), user("...")])
        assert await store.search_sessions("alpha")
    async with chatkeep.open_store(url) as store:
        await store.append_messages(session.id, user("beta"))  # the window drops alpha
        await store.append_messages(session.id, user("gamma"))  # and then "..."
        hits = await store.search_sessions("beta")
        assert [[m.seq for m in h.messages] for h in hits] == [[3]]
        hits = await store.search_sessions("gamma")
        assert [[m.seq for m in h.messages] for h in hits] == [[4]]
    assert counts(tmp_path / "s.db") == (2, 2, 0)


async def test_messages_removed_in_the_transaction_that_appended_them_leave_no_queue_rows(
    tmp_path: Path,
) -> None:
    """A transaction's queue rows are written together, but before any statement that
    deletes messages: the delete triggers must find them to take them out again."""
    path = tmp_path / "s.db"
    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        popped, cleared, deleted = [(await store.create_session()).id for _ in range(3)]
        window = (await store.create_session(max_messages=1)).id
        async with store.transaction() as tx:
            await tx.append_messages(popped, [user("alpha"), user("beta")])
            await tx.pop_message(popped)
        assert counts(path) == (1, 0, 1)
        async with store.transaction() as tx:
            await tx.append_messages(cleared, user("gamma"))
            await tx.clear_messages(cleared)
            await tx.append_messages(deleted, user("delta"))
            await tx.delete_session(deleted)
            await tx.append_messages(window, user("old"))
            await tx.append_messages(window, user("new"))  # drops "old"
        assert counts(path) == (2, 0, 2)
        found = {t: [h.session.id for h in await store.search_sessions(t)] for t in ("beta", "old")}
        assert found == {"beta": [], "old": []}
        assert counts(path) == (2, 2, 0)


async def test_a_batch_of_appends_queues_every_message(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with chatkeep.open_store(f"sqlite:///{path}?writer=loop") as store:
        ids = [(await store.create_session()).id for _ in range(8)]
        await asyncio.gather(*(store.append_messages(sid, user(f"word{sid}")) for sid in ids))
        assert counts(path) == (8, 0, 8)
        for sid in ids:
            hits = await store.search_sessions(f"word{sid}")
            assert [h.session.id for h in hits] == [sid]
