"""What is specific to the PostgreSQL backend: URL options, migrations, schemas, the
connection, row locks, and that its SQL (filters, keyset pages, tsvector search)
answers exactly as the reference in core.query. Runs against the real server at
``$CHATKEEP_TEST_POSTGRES_URL``; skips without it (fails under CI)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import listing_reference
import pytest
from listing_reference import NOW, SORTS, make_session, reference

import chatkeep
from chatkeep import (
    ConfigurationError,
    Message,
    NewMessage,
    Role,
    Session,
    SessionExistsError,
    SessionFilter,
    SessionNotFoundError,
    SessionSort,
    StoreUnavailableError,
)
from chatkeep.core.models import JSON
from chatkeep.core.query import Cursor, search_terms, sort_value, words
from chatkeep.stores import postgres
from chatkeep.stores import postgres_query as q
from chatkeep.stores.postgres import PostgresBackend
from chatkeep.stores.postgres_options import driver_dsn
from chatkeep.stores.sql.postgres import latest, quote_ident
from chatkeep.stores.urls import masked

BASE = os.environ.get("CHATKEEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
History = list[tuple[Session, list[Message]]]


def require_server() -> None:
    parts = urlsplit(BASE)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return
    except OSError as exc:
        reason = f"PostgreSQL at {masked(BASE)} is unreachable ({exc})"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def with_options(**options: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"{BASE}{'&' if '?' in BASE else '?'}{query}"


async def sql(query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(driver_dsn(BASE))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


@pytest.fixture
async def schemas() -> AsyncIterator[list[str]]:
    """Three fresh schema names for the test, dropped afterwards."""
    require_server()
    made = [f"ckunit{uuid.uuid4().hex[:12]}" for _ in range(3)]
    yield made
    for name in made:
        await sql(f"DROP SCHEMA IF EXISTS {quote_ident(name)} CASCADE")


@pytest.fixture
async def backend(schemas: list[str]) -> AsyncIterator[PostgresBackend]:
    opened = await PostgresBackend.open(with_options(schema=schemas[0]), {"schema": schemas[0]})
    yield opened
    await opened.close()


async def open_schema(schema: str, **options: str) -> PostgresBackend:
    return await PostgresBackend.open(with_options(schema=schema), {"schema": schema, **options})


# -- options and connecting ---------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "name"),
    [({"bogus": "1"}, "bogus"), ({"pool_max": "many"}, "pool_max"),
     ({"schema": "a-b"}, "schema"), ({"pool_min": "5", "pool_max": "2"}, "pool_max"),
     ({"connect_timeout": "0"}, "connect_timeout"), ({"connect_timeout": "nan"}, "connect_timeout"),
     ({"pool_min": "-1"}, "pool_min"), ({"cache_sessions": "-1"}, "cache_sessions"),
     ({"cache_messages": "some"}, "cache_messages"),
     ({"command_timeout": "0"}, "command_timeout"), ({"command_timeout": "inf"}, "command_timeout"),
     ({"command_timeout": "soon"}, "command_timeout")],
)  # fmt: skip
async def test_a_bad_option_is_refused_by_name(options: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await PostgresBackend.open(with_options(**options), options)
    assert caught.value.name == name


def test_chatkeep_options_are_not_passed_to_the_driver() -> None:
    url = "postgresql://u:pw@h:5/db?schema=x&sslmode=disable&pool_max=3&connect_timeout=2"
    assert driver_dsn(url) == "postgresql://u:pw@h:5/db?sslmode=disable"
    assert masked(url) == (
        "postgresql://u:***@h:5/db?schema=x&sslmode=disable&pool_max=3&connect_timeout=2"
    )
    assert masked("postgresql://h/db?password=pw") == "postgresql://h/db?password=***"


async def test_an_unreachable_server_is_named_with_the_password_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres, "RETRY_DELAY", 0.0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:s3cret@127.0.0.1:{port}/test?schema=x"
    with pytest.raises(StoreUnavailableError) as caught:
        await chatkeep.open_store(url)
    message = str(caught.value)
    assert f"postgresql://postgres:***@127.0.0.1:{port}/test" in message
    assert "s3cret" not in message
    assert f"{postgres.CONNECT_ATTEMPTS} attempts" in message


# -- migrations and schemas ---------------------------------------------------------
async def versions(schema: str) -> list[int]:
    rows = await sql(f"SELECT version FROM {quote_ident(schema)}.schema_version ORDER BY 1")
    return [row[0] for row in rows]


async def test_migrations_are_recorded_once(schemas: list[str]) -> None:
    for _ in range(2):
        opened = await open_schema(schemas[0])
        await opened.close()
    assert await versions(schemas[0]) == list(range(1, latest() + 1))


async def test_concurrent_opens_migrate_once(schemas: list[str]) -> None:
    opened = await asyncio.gather(*(open_schema(schemas[1], pool_min="1") for _ in range(6)))
    try:
        async with opened[0].transaction(True) as txn:
            await txn.put_session(make_session("s"), new=True)
        async with opened[-1].transaction(False) as txn:
            assert await txn.get_session("s") == make_session("s")
    finally:
        await asyncio.gather(*(b.close() for b in opened))
    assert await versions(schemas[1]) == list(range(1, latest() + 1))


async def test_a_newer_schema_version_is_refused(schemas: list[str]) -> None:
    await (await open_schema(schemas[0])).close()
    await sql(f"INSERT INTO {quote_ident(schemas[0])}.schema_version VALUES (999, 'future')")
    with pytest.raises(StoreUnavailableError, match="version 999"):
        await open_schema(schemas[0])


async def test_everything_stays_inside_the_schema(schemas: list[str]) -> None:
    one, other = await open_schema(schemas[0]), await open_schema(schemas[1])
    try:
        async with one.transaction(True) as txn:
            await txn.put_session(make_session("s"), new=True)
        async with other.transaction(False) as txn:
            assert await txn.get_session("s") is None
    finally:
        await one.close()
        await other.close()
    tables = await sql(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema = ANY($1::text[]) ORDER BY 1, 2",
        schemas[:2],
    )
    expected = sorted(
        (s, t) for s in schemas[:2] for t in ("messages", "schema_version", "sessions")
    )
    assert [tuple(row) for row in tables] == expected


async def test_check_reports_the_schema_version_and_sizes(backend: PostgresBackend) -> None:
    async with backend.transaction(False) as txn:
        issues, details = await txn.check()
    assert issues == []
    assert details["schema_version"] == latest()
    assert isinstance(details["messages_bytes"], int)


async def test_the_last_messages_are_read_from_the_primary_key_backwards(
    backend: PostgresBackend, schemas: list[str]
) -> None:
    history = [
        (make_session(sid), [make_message(sid, seq, f"m{seq}") for seq in range(1, 2001)])
        for sid in ("a", "b")
    ]
    await store_all(backend, history)
    await sql(f"ANALYZE {quote_ident(schemas[0])}.messages")
    conn = await asyncpg.connect(driver_dsn(BASE), server_settings={"search_path": schemas[0]})
    try:
        plan = await conn.fetch(f"EXPLAIN {q.READ_NEWEST}", "a", 0, q.SEQ_MAX, 20)
    finally:
        await conn.close()
    text = "\n".join(row[0] for row in plan)
    assert "Index Scan Backward using messages_pkey" in text, text


# -- transactions and failures ------------------------------------------------------
async def test_session_rows_are_inserted_once_and_updated_only_if_present(
    backend: PostgresBackend,
) -> None:
    async with backend.transaction(True) as txn:
        await txn.put_session(make_session("s"), new=True)
    with pytest.raises(SessionExistsError):
        async with backend.transaction(True) as txn:
            await txn.put_session(make_session("s", owner="x"), new=True)
    with pytest.raises(SessionNotFoundError):
        async with backend.transaction(True) as txn:
            await txn.put_session(make_session("ghost"), new=False)
    async with backend.transaction(False) as txn:
        assert await txn.get_session("s") == make_session("s")


async def test_a_rollback_undoes_every_write(backend: PostgresBackend) -> None:
    await store_all(backend, [(make_session("s"), [make_message("s", 1, "kept")])])
    with pytest.raises(RuntimeError):
        async with backend.transaction(True) as txn:
            await txn.insert_messages("s", [make_message("s", 2, "gone")])
            await txn.put_session(make_session("s", message_count=2, last_seq=2), new=False)
            raise RuntimeError("boom")
    async with backend.transaction(False) as txn:
        assert await txn.get_session("s") == make_session("s")
        assert [m.seq for m in await txn.read_messages(
            "s", after_seq=None, before_seq=None, limit=None, newest=False
        )] == [1]  # fmt: skip


async def test_a_lost_connection_is_unavailable_then_recovers(schemas: list[str]) -> None:
    name = f"ck{uuid.uuid4().hex[:8]}"
    opened = await PostgresBackend.open(
        with_options(schema=schemas[0], application_name=name),
        {"schema": schemas[0], "application_name": name, "pool_max": "1"},
    )
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            async with opened.transaction(True) as txn:
                await txn.put_session(make_session("s"), new=True)
                killed = await sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = $1",
                    name,
                )
                assert [row[0] for row in killed] == [True]
                await txn.get_session("s")
        assert isinstance(caught.value.__cause__, postgres.DRIVER_ERRORS)
        assert "s3cret" not in str(caught.value)
        async with opened.transaction(False) as txn:
            assert await txn.get_session("s") is None
    finally:
        await opened.close()


async def test_writers_in_two_pools_never_share_a_seq(schemas: list[str]) -> None:
    urls = [with_options(schema=schemas[0], pool_max=4)] * 2
    stores = [await chatkeep.open_store(url) for url in urls]
    try:
        s = await stores[0].create_session(max_messages=10_000)

        async def writer(task: int) -> list[int]:
            store = stores[task % 2]
            out = []
            for i in range(4):
                message = NewMessage(role="user", content=f"t{task} {i}")
                out += [m.seq for m in await store.append_messages(s.id, message)]
            return out

        acked = [seq for seqs in await asyncio.gather(*map(writer, range(32))) for seq in seqs]
        history = await stores[1].get_messages(s.id)
        assert sorted(acked) == [m.seq for m in history] == list(range(1, 32 * 4 + 1))
        assert (await stores[0].get_session(s.id)).message_count == 32 * 4
    finally:
        for store in stores:
            await store.close()


# -- listing: the SQL must answer as core.query.matches -----------------------------
def make_message(sid: str, seq: int, content: str, **metadata: JSON) -> Message:
    return Message(f"{sid}-m{seq}", sid, seq, Role.USER, content, None, NOW, dict(metadata))


async def store_all(backend: PostgresBackend, history: History) -> None:
    async with backend.transaction(True) as txn:
        for session, messages in history:
            await txn.put_session(session, new=True)
            await txn.insert_messages(session.id, messages)


METADATA_VALUES: list[JSON] = [
    1, 1.0, True, "1", 0, False, None, 2.5, 2**70, -(2**63), "text", 2**60, float(2**60),
    2**53 + 1, float(2**53), 0.1, 1e300, -0.0, "a\x00b", "a\ufffdb", "",
    [1, 2], [1, True], [], {"x": 1, "y": [2]}, {"y": [2], "x": 1.0}, {}, "[1,2]", "{}",
]  # fmt: skip


def varied_sessions(count: int = 60) -> list[Session]:
    return listing_reference.varied_sessions(
        METADATA_VALUES,
        count=count,
        metadata_chance=0.85,
        name=lambda rnd, i: f"{rnd.choice('aAbB_')}{i:02d}",
    )


def filters() -> list[SessionFilter]:
    return listing_reference.filters(METADATA_VALUES)


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
async def test_listing_filters_sorts_and_pages_exactly_as_the_reference(
    backend: PostgresBackend, write: bool
) -> None:
    sessions = varied_sessions()
    await store_all(backend, [(s, []) for s in sessions])
    compared = 0
    async with backend.transaction(write) as txn:
        for flt in filters():
            for sort in SORTS:
                want = reference(sessions, flt, sort)
                got = await txn.query_sessions(flt, sort, 1000, None, NOW)
                assert [s.id for s in got] == want, (flt, sort)
                assert got == [s for i in want for s in sessions if s.id == i]
                pages: list[str] = []
                cursor = None
                while page := await txn.query_sessions(flt, sort, 3, cursor, NOW):
                    assert len(page) <= 3
                    pages += [s.id for s in page]
                    cursor = Cursor(sort, sort_value(page[-1], sort), page[-1].id)
                assert pages == want, (flt, sort)
                compared += len(want)
    assert compared > 1000


async def test_values_postgresql_text_cannot_hold_answer_as_the_reference(
    backend: PostgresBackend,
) -> None:
    sessions = [
        *varied_sessions(12),
        make_session("nul-key", metadata={"n\x00": 1, "t\x00": "v\x00"}),
        make_session("B", minutes=5, owner="alice"),
        make_session("B.", minutes=5),
        make_session("B0", minutes=5),
        make_session("A~", minutes=5),
    ]
    await store_all(backend, [(s, []) for s in sessions])
    odd: list[SessionFilter] = [
        SessionFilter(owner="alice\x00", include_expired=True),
        SessionFilter(owner=5, include_expired=True),  # type: ignore[arg-type]
        SessionFilter(tags=frozenset({"a\x00"}), include_expired=True),
        SessionFilter(tags=frozenset({1}), include_expired=True),  # type: ignore[arg-type]
        SessionFilter(metadata={"n\x00": 1.0}, include_expired=True),
        SessionFilter(metadata={"n\ufffd": 1}, include_expired=True),
        SessionFilter(metadata={"t\x00": "v\x00"}, include_expired=True),
        SessionFilter(metadata={"n": (1,)}, include_expired=True),  # type: ignore[dict-item]
    ]
    async with backend.transaction(False) as txn:
        for flt in odd:
            got = await txn.query_sessions(flt, SessionSort(), 100, None, NOW)
            assert [x.id for x in got] == reference(sessions, flt, SessionSort()), flt
        everything = SessionFilter(include_expired=True)
        for sort in SORTS:
            ordered = reference(sessions, everything, sort)
            for mark in ("B\x00", "B\x00x", "A\x00"):
                cursor = Cursor(sort, NOW + timedelta(minutes=5), mark)
                got = await txn.query_sessions(everything, sort, 100, cursor, NOW)
                want = [i for i in ordered for x in sessions if x.id == i and cursor.admits(x)]
                assert [x.id for x in got] == want, (sort, mark)


async def test_metadata_equality_is_python_equality_of_the_decoded_json(
    backend: PostgresBackend,
) -> None:
    values: dict[str, JSON] = {
        "int": 1, "float": 1.0, "true": True, "text": "1", "list": [1], "big": 2**64,
        "obj": {"a": 1, "b": 2}, "nul": "x\x00", "fffd": "x\ufffd", "huge": 10**400,
    }  # fmt: skip
    await store_all(backend, [(make_session(k, metadata={"n": v}), []) for k, v in values.items()])

    async def chosen(value: object) -> set[str]:
        flt = SessionFilter(metadata={"n": value})  # type: ignore[dict-item]
        async with backend.transaction(False) as txn:
            return {s.id for s in await txn.query_sessions(flt, SessionSort(), 100, None, NOW)}

    assert await chosen(1) == await chosen(True) == await chosen(1.0) == {"int", "float", "true"}
    assert await chosen("1") == {"text"}
    assert await chosen([True]) == {"list"}
    assert await chosen(2**64) == await chosen(float(2**64)) == {"big"}
    assert await chosen(2**64 + 1) == set()
    assert await chosen({"b": 2, "a": 1.0}) == {"obj"}
    assert await chosen("x\x00") == {"nul"}
    assert await chosen("x\ufffd") == {"fffd"}
    assert await chosen(10**400) == {"huge"}
    assert await chosen(1e300) == set()


# -- search: tsvector must answer as words() says -----------------------------------
HISTORY_TEXT = {
    "plain": (["alpha beta", "alpha", "gamma alpha", "alpha again"], {"topic": "release"}),
    "split": (["alpha only", "beta only"], {}),
    "greek": (["ᾶ μόνο", "Ωμέγα"], {"lang": "ελληνικά"}),
    "meta": ([], {"topic": "release notes", "n": 5}),
    "ligature": (["ﬁnal draft"], {}),
    "long": (["x" * 3000 + " short", "ǂ6162 ab"], {}),
    "nul": (["quick\x00fox"], {}),
}


def search_history() -> History:
    out = []
    for i, (sid, (texts, metadata)) in enumerate(HISTORY_TEXT.items()):
        session = make_session(sid, minutes=i, metadata=metadata, owner="o" if i % 2 else None)
        out.append((session, [make_message(sid, n + 1, t) for n, t in enumerate(texts)]))
    return out


def expected_hits(
    history: History, terms: list[str], owner: str | None
) -> list[tuple[str, list[int]]]:
    wanted = set(terms)
    out = []
    for session, messages in sorted(
        history, key=lambda p: (p[0].last_activity_at, p[0].id), reverse=True
    ):
        if owner is not None and session.owner != owner:
            continue
        found = [
            m.seq for m in reversed(messages) if wanted <= words(m.content) | words(m.metadata)
        ][:3]
        if found or wanted <= words(session.metadata):
            out.append((session.id, found))
    return out


QUERIES = [
    "alpha", "alpha beta", "beta", "release", "release notes", "topic", "α", "ᾶ", "ΩΜΈΓΑ",
    "ελληνικά", "final", "fi", "5", "missing", "alpha missing", "x" * 3000, "x" * 2999,
    "ǂ6162", "6162", "ab", "quick fox", "short",
]  # fmt: skip


@pytest.mark.parametrize("owner", [None, "o"])
async def test_search_answers_as_the_words_of_each_message(
    backend: PostgresBackend, owner: str | None
) -> None:
    history = search_history()
    await store_all(backend, history)
    stored = {session.id: (session, messages) for session, messages in history}
    for query in QUERIES:
        terms = search_terms(query)
        async with backend.transaction(False) as txn:
            hits = await txn.search(terms, owner, True, 20, NOW)
        assert [(h.session.id, [m.seq for m in h.messages]) for h in hits] == expected_hits(
            history, terms, owner
        ), query
        for hit in hits:
            session, messages = stored[hit.session.id]
            assert hit.session == session
            assert all(m in messages for m in hit.messages)


@pytest.mark.parametrize(
    "terms",
    [["'"], ["\\"], ["alpha:*"], ["alpha & beta"], ["!alpha"], ["alpha | gamma"], ["<->"],
     [""], ["ALPHA"], ["alpha", "'quoted'", "(x)"]],
)  # fmt: skip
async def test_search_terms_are_never_tsquery_syntax(
    backend: PostgresBackend, terms: list[str]
) -> None:
    await store_all(backend, search_history())
    async with backend.transaction(False) as txn:
        assert await txn.search(terms, None, True, 20, NOW) == []
