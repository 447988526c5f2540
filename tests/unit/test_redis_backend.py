"""What is specific to the Redis backend: its options, the key prefix, bad data found in
Redis, concurrent writers through separate pools, and lost optimistic races.

Runs against the real Redis at ``$CHATKEEP_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``); skips when it is unreachable, fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

import chatkeep
from chatkeep import (
    ConfigurationError,
    CorruptDataError,
    FakeClock,
    NewMessage,
    SessionFilter,
    Store,
    StoreUnavailableError,
)
from chatkeep.errors import TransactionConflictError
from chatkeep.stores.redis import RedisBackend
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.redis_scan import walk
from chatkeep.stores.redis_writes import GC_GRACE

URL = os.environ.get("CHATKEEP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WRITER = Path(__file__).parents[1] / "contract" / "crash_child.py"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(URL, protocol=2)
    try:
        await client.ping()
    except (OSError, aioredis.ConnectionError) as exc:
        await client.aclose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"redis server {URL} is unreachable ({exc})")
        pytest.skip(f"redis server {URL} is unreachable ({exc})")
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(raw: aioredis.Redis) -> AsyncIterator[str]:
    """A fresh key prefix, whose keys are deleted after the test."""
    name = f"unit{secrets.token_hex(6)}"
    yield name
    found = [key async for key in raw.scan_iter(match=Keys(name).pattern(), count=1000)]
    if found:
        await raw.unlink(*found)


def url_of(prefix: str, **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"prefix": prefix, **options}.items())
    return f"{URL}{'&' if '?' in URL else '?'}{query}"


@pytest.fixture
async def store(prefix: str, fake_clock: FakeClock) -> AsyncIterator[Store]:
    async with chatkeep.open_store(url_of(prefix), clock=fake_clock) as opened:
        yield opened


async def all_keys(raw: aioredis.Redis) -> set[bytes]:
    return {key async for key in raw.scan_iter(count=1000)}


def batch(*texts: str) -> list[NewMessage]:
    return [NewMessage(role="user", content=t) for t in texts]


# -- options and connecting -----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"colour": "red"}, "colour"),
        ({"max_connections": "0"}, "max_connections"),
        ({"max_connections": "many"}, "max_connections"),
        ({"socket_timeout": "-1"}, "socket_timeout"),
        ({"socket_timeout": "inf"}, "socket_timeout"),
        ({"prefix": ""}, "prefix"),
        ({"prefix": "a b"}, "prefix"),
    ],
)
async def test_bad_options_are_refused(options: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        await RedisBackend.open(URL, options)
    assert info.value.name == name


async def test_an_unknown_url_option_is_refused_by_open_store() -> None:
    with pytest.raises(ConfigurationError, match=r"^colour: "):
        await chatkeep.open_store(f"redis://127.0.0.1:{closed_port()}/0?colour=red")


async def test_an_unreachable_server_is_named_with_the_password_masked() -> None:
    port = closed_port()
    with pytest.raises(StoreUnavailableError) as info:
        await chatkeep.open_store(f"redis://user:s3cret@127.0.0.1:{port}/0?prefix=x")
    message = str(info.value)
    assert f"redis://user:***@127.0.0.1:{port}/0" in message
    assert "s3cret" not in message
    assert "3 attempts" in message


async def test_options_are_used(prefix: str, raw: aioredis.Redis) -> None:
    backend = await RedisBackend.open(
        url_of(prefix), {"prefix": prefix, "max_connections": "3", "socket_timeout": "2.5"}
    )
    try:
        assert backend.options.max_connections == 3
        assert backend.options.socket_timeout == 2.5
        assert backend.keys.prefix == prefix
    finally:
        await backend.close()


async def start_private_server(port: int, directory: Path) -> asyncio.subprocess.Process:
    """A redis-server of the test's own on ``port``, once it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = await asyncio.create_subprocess_exec(
        *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        cwd=directory,
        stdout=asyncio.subprocess.DEVNULL,
    )
    client = aioredis.Redis(port=port)
    try:
        for _ in range(500):
            try:
                await client.ping()
                return server
            except aioredis.ConnectionError:
                await asyncio.sleep(0.01)
    finally:
        await client.aclose()
    await stop(server)
    pytest.fail(f"the private redis-server on port {port} did not start")


async def stop(server: asyncio.subprocess.Process) -> None:
    if server.returncode is None:
        server.kill()
        await server.wait()


async def test_a_lost_server_is_unavailable_then_used_again(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    port = closed_port()
    server = await start_private_server(port, tmp_path)
    try:
        url = f"redis://127.0.0.1:{port}/0?prefix=p"
        async with chatkeep.open_store(url, clock=fake_clock) as store:
            s = await store.create_session()
            await stop(server)
            with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}"):
                await store.append_messages(s.id, batch("x"))
            with pytest.raises(StoreUnavailableError):
                await store.get_session(s.id)
            server = await start_private_server(port, tmp_path)
            again = await store.create_session()
            assert [m.seq for m in await store.append_messages(again.id, batch("y"))] == [1]
    finally:
        await stop(server)


# -- the prefix ---------------------------------------------------------------------------


async def test_nothing_is_written_outside_the_prefix(
    raw: aioredis.Redis, prefix: str, fake_clock: FakeClock
) -> None:
    before = await all_keys(raw)
    async with chatkeep.open_store(url_of(prefix), clock=fake_clock) as store:
        a = await store.create_session(owner="alice", tags=["t"], metadata={"k": 1}, ttl=60)
        await store.create_session(id="b", ttl=None)
        await store.append_messages(a.id, [*batch("one", "two"), NewMessage("user", "k", id="k")])
        await store.set_session_lock(a.id, "agent")
        async with store.transaction() as tx:
            await tx.append_messages("b", batch("in a transaction"))
            await tx.update_session(a.id, {"owner": "bob", "max_messages": 1})
        await store.list_sessions(SessionFilter(owner="bob", tags=frozenset({"t"})))
        await store.search_sessions("one")
        await store.stats()
        assert (await store.health()).healthy
        fake_clock.advance(timedelta(seconds=61))
        assert await store.cleanup_expired_sessions() == 1
        await store.optimize()
        exported = [line async for line in store.export_sessions()]
        await store.import_sessions(exported, strategy="overwrite")
    new = {key.decode() for key in await all_keys(raw) - before}
    assert any(key.startswith(f"{prefix}:") for key in new)
    outside = {k for k in new if not k.startswith(f"{prefix}:") and not k.startswith("ck")}
    assert outside == set(), "keys written outside the prefix"


async def test_two_prefixes_do_not_see_each_other(prefix: str, fake_clock: FakeClock) -> None:
    async with (
        chatkeep.open_store(url_of(prefix), clock=fake_clock) as one,
        chatkeep.open_store(url_of(prefix + "x"), clock=fake_clock) as other,
    ):
        try:
            await one.create_session(id="same")
            await other.create_session(id="same", owner="o")
            assert (await one.get_session("same")).owner is None
            assert [s.owner for s in (await other.list_sessions()).sessions] == ["o"]
        finally:
            await other.delete_session("same")


# -- bad data found in Redis -------------------------------------------------------------


async def test_a_bad_record_is_an_error_for_its_session_only(
    store: Store, raw: aioredis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    await store.create_session(id="bad")
    await store.create_session(id="good")
    await raw.set(keys.session("bad"), b"{not json")
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.get_session("bad")
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.append_messages("bad", batch("x"))
    assert [m.seq for m in await store.append_messages("good", batch("x"))] == [1]
    report = await store.health()
    assert not report.healthy
    assert any("'bad'" in issue for issue in report.issues)
    assert all("'good'" not in issue for issue in report.issues)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda k: ("zadd", k.messages("bad"), {b'{"id": 1}': 9}), id="message"),
        pytest.param(lambda k: ("set", k.messages("bad"), b"a string"), id="wrong-type"),
        pytest.param(lambda k: ("set", k.session("bad"), b'{"id": "bad"}'), id="fields"),
        pytest.param(lambda k: ("set", k.session("bad"), b'"good"'), id="not-an-object"),
    ],
)
async def test_bad_values_give_corrupt_data_errors(
    store: Store, raw: aioredis.Redis, prefix: str, damage: object
) -> None:
    await store.create_session(id="bad")
    await store.append_messages("bad", batch("fine"))
    await store.create_session(id="good")
    await store.append_messages("good", batch("fine"))
    command, key, value = damage(Keys(prefix))  # type: ignore[operator]
    if command == "set":
        await raw.delete(key)
        await raw.set(key, value)
    else:
        await raw.zadd(key, value)
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.get_session("bad")
        await store.get_messages("bad")
    assert [m.content for m in await store.get_messages("good")] == ["fine"]


async def test_a_bad_idempotency_index_entry(
    store: Store, raw: aioredis.Redis, prefix: str
) -> None:
    await store.create_session(id="bad")
    await raw.hset(Keys(prefix).ids("bad"), "key", "not a seq")
    with pytest.raises(CorruptDataError, match="session 'bad'"):
        await store.append_messages("bad", [NewMessage("user", "x", id="key")])


# -- concurrency --------------------------------------------------------------------------


async def test_two_stores_with_sixteen_writers_each(prefix: str, fake_clock: FakeClock) -> None:
    async with (
        chatkeep.open_store(url_of(prefix, max_connections="8"), clock=fake_clock) as one,
        chatkeep.open_store(url_of(prefix, max_connections="8"), clock=fake_clock) as two,
    ):
        s = await one.create_session(max_messages=100_000)

        async def writer(store: Store, task: int) -> list[int]:
            seqs: list[int] = []
            for i in range(6):
                texts = [f"{store is one}-{task}-{i}-{j}" for j in range(1 + (task + i) % 3)]
                seqs += [m.seq for m in await store.append_messages(s.id, batch(*texts))]
            return seqs

        results = await asyncio.gather(*(writer(st, t) for t in range(16) for st in (one, two)))
        acknowledged = sorted(seq for seqs in results for seq in seqs)
        history = await two.get_messages(s.id)
        assert [m.seq for m in history] == acknowledged == list(range(1, len(history) + 1))
        assert len({m.content for m in history}) == len(history)
        after = await one.get_session(s.id)
        assert (after.message_count, after.last_seq) == (len(history), len(history))
        assert (await one.health()).healthy


async def test_two_processes_append_to_one_session(prefix: str) -> None:
    url = url_of(prefix)
    async with chatkeep.open_store(url) as store:
        await store.create_session(id="shared", ttl=None, max_messages=1_000_000)
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(WRITER), url, "shared", stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]

    async def acknowledged(writer: asyncio.subprocess.Process) -> list[int]:
        assert writer.stdout is not None
        seqs: list[int] = []
        while len(seqs) < 150:
            line = await writer.stdout.readline()
            assert line, f"a writer exited early ({await writer.wait()})"
            seqs.append(int(line))
        return seqs

    try:
        one, two = await asyncio.gather(*map(acknowledged, writers))
    finally:
        for writer in writers:
            writer.kill()
            await writer.wait()
    async with chatkeep.open_store(url) as store:
        history = [m.seq for m in await store.get_messages("shared")]
    assert history == list(range(1, len(history) + 1))
    assert set(one).isdisjoint(two)
    assert set(one + two) <= set(history)


async def test_a_stale_lock_only_delays_a_writer(
    store: Store, raw: aioredis.Redis, prefix: str
) -> None:
    s = await store.create_session()
    await raw.set(Keys(prefix).lock(s.id), "crashed-writer", px=300)
    assert [m.seq for m in await store.append_messages(s.id, batch("x"))] == [1]
    assert await raw.exists(Keys(prefix).lock(s.id)) == 0


async def test_a_lost_race_is_a_conflict_that_writes_nothing(
    store: Store, prefix: str, fake_clock: FakeClock
) -> None:
    s = await store.create_session(id="raced", owner="o")
    backend = await RedisBackend.open(url_of(prefix), {"prefix": prefix})
    try:
        with pytest.raises(TransactionConflictError, match="'raced'"):
            async with backend.transaction(True) as txn:
                listed = await txn.query_sessions(
                    SessionFilter(owner="o"), store_sort(), 10, None, fake_clock.now()
                )
                assert [x.id for x in listed] == ["raced"]
                await store.append_messages(s.id, batch("won the race"))
                await txn.put_session(listed[0], new=False)
                await txn.clear_messages(s.id)
    finally:
        await backend.close()
    assert [m.content for m in await store.get_messages(s.id)] == ["won the race"]
    assert (await store.get_session(s.id)).version == 2


async def test_a_conflicting_user_transaction_raises_and_writes_nothing(
    store: Store, raw: aioredis.Redis, prefix: str
) -> None:
    s = await store.create_session(id="tx")
    with pytest.raises(TransactionConflictError, match="nothing was written"):
        async with store.transaction() as tx:
            await tx.append_messages(s.id, batch("lost"))
            await tx.create_session(id="also-lost")
            record = Keys(prefix).session(s.id)
            await raw.set(record, await raw.get(record) or b"")
    assert await store.get_messages(s.id) == []
    assert [x.id for x in (await store.list_sessions()).sessions] == ["tx"]
    assert [m.seq for m in await store.append_messages(s.id, batch("next"))] == [1]


def store_sort() -> chatkeep.SessionSort:
    return chatkeep.SessionSort.parse("created_at")


# -- layout ---------------------------------------------------------------------------------


async def test_native_ttl_is_only_garbage_collection(
    store: Store, raw: aioredis.Redis, prefix: str, fake_clock: FakeClock
) -> None:
    keys = Keys(prefix)
    short = await store.create_session(id="short", ttl=60)
    await store.append_messages(short.id, batch("x"))
    await store.create_session(id="forever", ttl=None)
    ttl = await raw.pttl(keys.session("short"))
    assert (GC_GRACE + timedelta(seconds=59)) // timedelta(milliseconds=1) < ttl
    assert await raw.pttl(keys.messages("short")) > 0
    assert await raw.pttl(keys.session("forever")) == -1
    fake_clock.advance(timedelta(days=3))
    assert await store.expire_sessions() == ["short"]
    assert await store.cleanup_expired_sessions() == 1
    await store.set_expiration("forever", fake_clock.now() - timedelta(days=400))
    assert await raw.pttl(keys.session("forever")) > 0
    assert await store.cleanup_expired_sessions() == 1


async def test_walk_pages_through_ties(raw: aioredis.Redis, prefix: str) -> None:
    backend = await RedisBackend.open(url_of(prefix), {"prefix": prefix})
    key = f"{prefix}:walk"
    members = {f"m{i:02d}": i // 4 for i in range(23)}
    await raw.zadd(key, members)
    expected = sorted(members, key=lambda m: (members[m], m))
    try:
        async with backend.transaction(False) as txn:
            for size in (1, 2, 3, 5, 50):
                up = [m async for ids in walk(txn.link, key, None, None, False, size) for m in ids]
                down = [m async for ids in walk(txn.link, key, None, None, True, size) for m in ids]
                assert up == expected
                assert down == expected[::-1]
                part = [m async for ids in walk(txn.link, key, 2, 4, False, size) for m in ids]
                assert part == [m for m in expected if 2 <= members[m] <= 4]
    finally:
        await backend.close()


async def test_optimize_prunes_what_native_ttl_left(
    store: Store, raw: aioredis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    await store.create_session(id="collected", owner="o", ttl=60)
    await store.create_session(id="kept", owner="o")
    await raw.delete(*keys.data("collected"))
    assert [s.id for s in (await store.list_sessions(SessionFilter(owner="o"))).sessions] == [
        "kept"
    ]
    report = await store.optimize()
    assert report.operations == [
        "removed 7 listing entries of sessions that Redis expired natively"
    ]
    assert await raw.zscore(keys.by(chatkeep.SortField.CREATED_AT), "collected") is None
    assert (await store.stats()).total_sessions == 1
