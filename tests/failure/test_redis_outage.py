"""A Redis store whose server goes away: every call fails loudly, and the same store
works again once the server is back."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Awaitable, Callable

import pytest

import chatkeep
from chatkeep import FakeClock, NewMessage, Store, StoreUnavailableError

from .conftest import RedisServer, free_port, with_option


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
    redis_server: RedisServer, fake_clock: FakeClock
) -> None:
    url = with_option(redis_server.url, "prefix", "outage")
    where = f"127.0.0.1:{redis_server.port}"
    async with chatkeep.open_store(url, clock=fake_clock) as store:
        session = await store.create_session(max_messages=1000)
        await store.append_messages(session.id, one("before"))
        assert (await store.health()).healthy

        redis_server.stop()
        await assert_unavailable(store, session.id, where)
        await assert_unavailable(store, session.id, where)

        redis_server.start()
        # The server keeps nothing on disk: it comes back empty, and the store uses it.
        assert (await store.health()).healthy
        again = await store.create_session(max_messages=1000)
        stored = await store.append_messages(again.id, one("after"))
        assert [m.seq for m in stored] == [1]
        assert [m.content for m in await store.get_messages(again.id)] == ["after"]
        assert [s.id for s in (await store.list_sessions()).sessions] == [again.id]


async def test_a_server_lost_between_calls_never_gives_a_silent_success(
    redis_server: RedisServer, fake_clock: FakeClock
) -> None:
    url = with_option(redis_server.url, "prefix", "outage")
    async with chatkeep.open_store(url, clock=fake_clock) as store:
        session = await store.create_session(max_messages=1000)
        for round_ in range(3):
            redis_server.stop()
            with pytest.raises(StoreUnavailableError):
                await store.append_messages(session.id, one(f"lost {round_}"))
            redis_server.start()
            session = await store.create_session(id=session.id, max_messages=1000)
            stored = await store.append_messages(session.id, one(f"kept {round_}"))
            assert [m.seq for m in stored] == [1]
            assert [m.content for m in await store.get_messages(session.id)] == [f"kept {round_}"]


async def test_a_server_that_stops_replying_fails_the_call_within_the_time_limit(
    redis_server: RedisServer, fake_clock: FakeClock
) -> None:
    """A frozen server (SIGSTOP) keeps the connection open but answers nothing: each
    call gives up after ``socket_timeout``, and once the server runs again so does the
    store, on the acknowledged messages only."""
    url = with_option(with_option(redis_server.url, "prefix", "frozen"), "socket_timeout", "0.3")
    # A call on a connection open before gets no reply; one that must open a new
    # connection gets no answer to its handshake.
    where = re.escape(f"Redis at {redis_server.url}: no ") + "(reply|connection) within 0.3 s$"
    assert redis_server.process is not None
    async with chatkeep.open_store(url, clock=fake_clock) as store:
        session = await store.create_session(max_messages=1000)
        await store.append_messages(session.id, one("before"))
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            loop = asyncio.get_running_loop()
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: store.append_messages(session.id, one("lost")),
                lambda: store.get_messages(session.id),
                store.list_sessions,
            ]
            for call in calls:
                began = loop.time()
                with pytest.raises(StoreUnavailableError, match=where):
                    await call()
                assert 0.3 <= loop.time() - began < 5
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        kept = await store.append_messages(session.id, one("after"))
        contents = [m.content for m in await store.get_messages(session.id)]
        # The append that timed out may have reached the server before it froze.
        assert contents in (["before", "after"], ["before", "lost", "after"])
        assert kept[0].seq == len(contents)


async def test_opening_on_a_closed_port_names_the_url_with_the_password_masked() -> None:
    port = free_port()
    url = f"redis://:s3cr3t-pw@127.0.0.1:{port}/0?prefix=p"
    with pytest.raises(StoreUnavailableError) as caught:
        async with chatkeep.open_store(url):
            pass
    message = str(caught.value)
    assert f"redis://:***@127.0.0.1:{port}/0" in message
    assert "s3cr3t-pw" not in message
