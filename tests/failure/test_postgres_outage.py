"""A PostgreSQL store whose server goes away: every call fails loudly, and the same
store works again, with everything committed before, once the server is back."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
import pytest

import chatkeep
from chatkeep import FakeClock, NewMessage, Store, StoreUnavailableError

from .conftest import PostgresServer, free_port, with_option


def one(text: str) -> list[NewMessage]:
    return [NewMessage(role="user", content=text)]


async def assert_unavailable(store: Store, session_id: str, where: str) -> None:
    """Every kind of call raises StoreUnavailableError naming ``where``; none succeeds."""
    with pytest.raises(StoreUnavailableError, match=where):
        await store.append_messages(session_id, one("lost"))
    with pytest.raises(StoreUnavailableError, match=where):
        await store.get_messages(session_id)
    with pytest.raises(StoreUnavailableError, match=where):
        await store.get_session(session_id)
    with pytest.raises(StoreUnavailableError, match=where):
        await store.create_session()
    with pytest.raises(StoreUnavailableError, match=where):
        await store.list_sessions()
    report = await store.health()
    assert not report.healthy
    assert any(where in issue for issue in report.issues)


async def test_a_stopped_server_fails_every_call_and_the_store_recovers(
    postgres_server: PostgresServer, fake_clock: FakeClock
) -> None:
    url = with_option(postgres_server.url, "schema", "outage")
    where = f"127.0.0.1:{postgres_server.port}"
    async with chatkeep.open_store(url, clock=fake_clock) as store:
        session = await store.create_session(max_messages=1000)
        await store.append_messages(session.id, one("before"))
        assert (await store.health()).healthy

        postgres_server.stop()
        await assert_unavailable(store, session.id, where)
        await assert_unavailable(store, session.id, where)

        postgres_server.start()
        assert (await store.health()).healthy
        stored = await store.append_messages(session.id, one("after"))
        assert [m.seq for m in stored] == [2]
        assert [m.content for m in await store.get_messages(session.id)] == ["before", "after"]
        again = await store.create_session(max_messages=1000)
        listed = {s.id for s in (await store.list_sessions()).sessions}
        assert listed == {session.id, again.id}


async def test_a_server_that_stops_replying_fails_the_call_within_the_time_limit(
    postgres_server: PostgresServer, fake_clock: FakeClock
) -> None:
    """The store's server processes frozen (SIGSTOP) keep their connections open but
    answer nothing: each call gives up after ``command_timeout``, and once they run
    again so does the store, on the acknowledged messages only."""
    url = with_option(postgres_server.url, "schema", "frozen")
    url = with_option(with_option(url, "command_timeout", "0.5"), "application_name", "frozen")
    async with chatkeep.open_store(url, clock=fake_clock) as store:
        session = await store.create_session(max_messages=1000)
        await store.append_messages(session.id, one("before"))
        admin = await asyncpg.connect(postgres_server.url)
        loop = asyncio.get_running_loop()
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: store.append_messages(session.id, one("lost")),
            lambda: store.get_messages(session.id),
        ]
        try:
            for call in calls:
                # A call after a timeout opens a new connection: freeze it too.
                await store.get_session(session.id)
                pids = [
                    row[0]
                    for row in await admin.fetch(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = 'frozen'"
                    )
                ]
                assert pids
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
                try:
                    began = loop.time()
                    with pytest.raises(StoreUnavailableError, match="no reply within"):
                        await call()
                    assert 0.5 <= loop.time() - began < 10
                finally:
                    for pid in pids:
                        os.kill(pid, signal.SIGCONT)
        finally:
            await admin.close()
        kept = await store.append_messages(session.id, one("after"))
        contents = [m.content for m in await store.get_messages(session.id)]
        # The append that timed out may have been committed before the server froze.
        assert contents in (["before", "after"], ["before", "lost", "after"])
        assert kept[0].seq == len(contents)


async def test_a_write_interrupted_by_the_outage_is_not_half_done(
    postgres_server: PostgresServer, fake_clock: FakeClock
) -> None:
    url = with_option(postgres_server.url, "schema", "outage")
    async with chatkeep.open_store(url, clock=fake_clock) as store:
        session = await store.create_session(max_messages=1000)
        for round_ in range(2):
            postgres_server.stop()
            with pytest.raises(StoreUnavailableError):
                await store.append_messages(session.id, one(f"lost {round_}"))
            postgres_server.start()
            await store.append_messages(session.id, one(f"kept {round_}"))
        history = await store.get_messages(session.id)
        assert [(m.seq, m.content) for m in history] == [(1, "kept 0"), (2, "kept 1")]
        after = await store.get_session(session.id)
        assert (after.message_count, after.last_seq) == (2, 2)


async def test_opening_on_a_closed_port_names_the_url_with_the_password_masked() -> None:
    port = free_port()
    url = f"postgresql://postgres:s3cr3t-pw@127.0.0.1:{port}/postgres?schema=p"
    with pytest.raises(StoreUnavailableError) as caught:
        async with chatkeep.open_store(url):
            pass
    message = str(caught.value)
    assert f"postgresql://postgres:***@127.0.0.1:{port}/postgres" in message
    assert "s3cr3t-pw" not in message
