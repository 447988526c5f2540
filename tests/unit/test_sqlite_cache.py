"""The SQLite record cache: never stale, whoever changes the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import chatkeep
from chatkeep import NewMessage
from chatkeep.core.clock import FakeClock
from chatkeep.errors import ConfigurationError
from chatkeep.stores.sqlite_cache import Entry, newest


def user(text: str) -> NewMessage:
    return NewMessage(role="user", content=text)


def texts(messages: list[chatkeep.Message]) -> list[object]:
    return [m.content for m in messages]


async def test_a_second_connection_sees_every_change_of_the_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    clock = FakeClock()  # one time for both: the cache must not rely on timestamps
    async with (
        chatkeep.open_store(url, clock=clock) as a,
        chatkeep.open_store(url, clock=clock) as b,
    ):
        s = await a.create_session(id="s", metadata={"v": 1})
        await a.append_messages("s", [user("one")])
        assert texts(await a.get_messages("s", last=5)) == ["one"]
        assert texts(await b.get_messages("s", last=5)) == ["one"]

        await b.append_messages("s", [user("two")])
        assert texts(await a.get_messages("s", last=5)) == ["one", "two"]
        await b.update_session("s", {"metadata": {"v": 2}})
        assert (await a.get_session("s")).metadata == {"v": 2}
        await b.pop_message("s")
        assert texts(await a.get_messages("s", last=5)) == ["one"]

        await b.delete_session("s")
        await b.create_session(id="s", metadata={"v": 3})
        assert (await a.get_session("s")).metadata == {"v": 3}
        assert await a.get_messages("s", last=5) == []
        assert s.created_at == (await a.get_session("s")).created_at


async def test_a_rolled_back_transaction_leaves_nothing_in_the_cache(tmp_path: Path) -> None:
    async with chatkeep.open_store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        await store.create_session(id="s")
        await store.append_messages("s", [user("kept")])
        assert texts(await store.get_messages("s", last=5)) == ["kept"]
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.append_messages("s", [user("gone")])
                await tx.update_session("s", {"metadata": {"x": 1}})
                raise RuntimeError("undo")
        assert texts(await store.get_messages("s", last=5)) == ["kept"]
        assert (await store.get_session("s")).metadata == {}


@pytest.mark.parametrize("options", ["cache_sessions=0", "cache_messages=2", "cache_messages=0"])
async def test_reads_are_right_whatever_the_cache_holds(tmp_path: Path, options: str) -> None:
    async with chatkeep.open_store(f"sqlite:///{tmp_path / 'o.db'}?{options}") as store:
        await store.create_session(id="s", max_messages=4)
        for i in range(6):
            await store.append_messages("s", [user(str(i))])
            await store.get_messages("s", last=1)
        assert texts(await store.get_messages("s", last=3)) == ["3", "4", "5"]
        assert texts(await store.get_messages("s")) == ["2", "3", "4", "5"]
        await store.clear_messages("s")
        assert await store.get_messages("s", last=3) == []


@pytest.mark.parametrize("value", ["-1", "many", "1.5"])
async def test_a_bad_cache_option_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigurationError, match="cache_messages"):
        await chatkeep.open_store(f"sqlite:///{tmp_path / 'b.db'}?cache_messages={value}")


async def test_an_entry_serves_only_what_it_holds(tmp_path: Path) -> None:
    async with chatkeep.open_store("memory://") as store:
        s = await store.create_session()
        stored = await store.append_messages(s.id, [user(str(i)) for i in range(5)])
        session = await store.get_session(s.id)
    partial = Entry((), 1, (), session, tuple(stored[-3:]))
    assert texts(partial.last(2) or []) == ["3", "4"]
    assert partial.last(4) is None
    assert partial.last(None) is None
    whole = Entry((), 1, (), session, tuple(stored))
    assert texts(whole.last(None) or []) == ["0", "1", "2", "3", "4"]
    assert texts(whole.last(9) or []) == ["0", "1", "2", "3", "4"]
    assert newest(stored, 2) == tuple(stored[-2:])
    assert newest(stored[:1], 3) == (stored[0],)
    assert newest(stored, 4, depth=3) == tuple(stored[-3:])  # no more than the cache keeps
    assert newest(stored, 2, depth=3) == tuple(stored[-2:])
    assert newest(stored, 9, depth=0) == ()


async def test_the_writer_trusts_its_entries_only_while_no_other_connection_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        await store.create_session(id="s")
        await store.append_messages("s", [user("one")])
        await store.append_messages("s", [user("two")])  # the writer's own entry, trusted

        with sqlite3.connect(path) as other:  # another connection changes the session
            other.execute(
                'UPDATE sessions SET metadata = \'{"by":"other"}\', version = version + 1 '
                "WHERE id = 's'"
            )
        await store.append_messages("s", [user("three")])
        assert (await store.get_session("s")).metadata == {"by": "other"}

        with sqlite3.connect(path) as other:  # and its messages
            other.execute("DELETE FROM messages WHERE session_id = 's' AND seq = 3")
            other.execute(
                "UPDATE sessions SET message_count = 2, last_seq = 5, version = version + 1 "
                "WHERE id = 's'"
            )
        appended = await store.append_messages("s", [user("four")])
        assert [m.seq for m in appended] == [6]
        assert texts(await store.get_messages("s", last=5)) == ["one", "two", "four"]
        session = await store.get_session("s")
        assert (session.message_count, session.last_seq) == (3, 6)

        with sqlite3.connect(path) as other:
            other.execute("DELETE FROM sessions WHERE id = 's'")
        with pytest.raises(chatkeep.SessionNotFoundError):
            await store.append_messages("s", [user("five")])


async def test_appends_to_one_session_in_one_transaction_build_on_each_other(
    tmp_path: Path,
) -> None:
    async with chatkeep.open_store(f"sqlite:///{tmp_path / 't.db'}") as store:
        await store.create_session(id="s")
        await store.append_messages("s", [user("one")])
        async with store.transaction() as tx:
            await tx.append_messages("s", [user("two")])
            await tx.append_messages("s", [user("three")])
        assert texts(await store.get_messages("s", last=5)) == ["one", "two", "three"]
        assert (await store.get_session("s")).last_seq == 3
