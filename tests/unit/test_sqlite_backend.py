"""What is specific to the SQLite backend: the file, its options and schema, and that its
SQL (filters, keyset pages, FTS5 search) answers exactly as the reference in core.query."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

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
    SessionFilter,
    SessionSort,
    StoreUnavailableError,
)
from chatkeep.core.models import JSON
from chatkeep.core.query import Cursor, search_terms, sort_value, words
from chatkeep.stores.sqlite import SqliteBackend
from chatkeep.stores.sqlite_setup import PAGE_SIZE, SCHEMA_VERSION


def make_message(sid: str, seq: int, content: str, **metadata: JSON) -> Message:
    return Message(f"{sid}-m{seq}", sid, seq, Role.USER, content, None, NOW, dict(metadata))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "chat.db"


@pytest.fixture
def backend(db_path: Path) -> Iterator[SqliteBackend]:
    opened = SqliteBackend.open(str(db_path), {})
    yield opened
    opened.close()


@contextmanager
def writing(backend: SqliteBackend) -> Iterator[SqliteBackend]:
    backend.begin(True)
    try:
        yield backend
    except BaseException:
        backend.rollback()
        raise
    backend.commit()


History = list[tuple[Session, list[Message]]]


def store_all(backend: SqliteBackend, history: History) -> None:
    with writing(backend):
        for session, messages in history:
            backend.put_session(session, new=True)
            backend.insert_messages(session.id, messages)


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


# -- the file, its options and its schema ----------------------------------------
def test_a_new_file_is_in_wal_mode_with_the_schema_version(
    backend: SqliteBackend, db_path: Path
) -> None:
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert raw(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    issues, details = backend.check()
    assert issues == []
    assert details["journal_mode"] == "wal"
    assert details["synchronous"] == "full"
    assert details["quick_check"] == "ok"


@pytest.mark.parametrize("level", ["normal", "NORMAL", "full"])
def test_synchronous_is_honoured(tmp_path: Path, level: str) -> None:
    opened = SqliteBackend.open(str(tmp_path / "s.db"), {"synchronous": level})
    try:
        assert opened.check()[1]["synchronous"] == level.lower()
    finally:
        opened.close()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"synchronous": "off"}, "synchronous"),
        ({"synchronous": ""}, "synchronous"),
        ({"busy_timeout": "soon"}, "busy_timeout"),
        ({"journal_mode": "delete"}, "journal_mode"),
        ({"writer": "elsewhere"}, "writer"),
    ],
)
def test_a_bad_option_is_refused_by_name(
    tmp_path: Path, options: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        SqliteBackend.open(str(tmp_path / "s.db"), options)
    assert info.value.name == named
    assert not (tmp_path / "s.db").exists()


def test_reopening_keeps_the_data(backend: SqliteBackend, db_path: Path) -> None:
    session = make_session("s1", metadata={"k": [1, {"x": None}]}, tags=frozenset({"t"}))
    store_all(backend, [(session, [make_message("s1", 1, "hello there")])])
    backend.close()
    again = SqliteBackend.open(str(db_path), {"synchronous": "normal"})
    try:
        again.begin(False)
        assert again.get_session("s1") == session
        assert again.read_messages(
            "s1", after_seq=None, before_seq=None, limit=None, newest=False
        ) == [make_message("s1", 1, "hello there")]
        again.commit()
    finally:
        again.close()


def test_a_file_that_is_not_a_database_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(StoreUnavailableError, match=r"notes.db.*not a database"):
        SqliteBackend.open(str(path), {})


def test_a_newer_schema_is_refused_naming_the_file(db_path: Path) -> None:
    SqliteBackend.open(str(db_path), {}).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreUnavailableError, match=f"{db_path}.*schema version"):
        SqliteBackend.open(str(db_path), {})


@pytest.mark.parametrize(
    "damage",
    [
        "DROP TABLE messages",
        "ALTER TABLE sessions DROP COLUMN lock_expires",
        "DROP TRIGGER messages_unindex",
    ],
)
def test_a_broken_schema_is_refused_naming_the_file(db_path: Path, damage: str) -> None:
    SqliteBackend.open(str(db_path), {}).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(damage)
    with pytest.raises(StoreUnavailableError, match=f"{db_path}.*chatkeep schema"):
        SqliteBackend.open(str(db_path), {})


def test_a_new_file_takes_the_page_size_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    SqliteBackend.open(str(tmp_path / "new.db"), {}).close()
    assert raw(tmp_path / "new.db", "PRAGMA page_size") == [(PAGE_SIZE,)]
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("PRAGMA page_size = 8192")
        conn.execute("CREATE TABLE unrelated (x)")
        conn.execute("DROP TABLE unrelated")
    old = SqliteBackend.open(str(tmp_path / "old.db"), {})  # given the schema, in its pages
    store_all(old, [(make_session("s1"), [make_message("s1", 1, "hello")])])
    old.close()
    assert raw(tmp_path / "old.db", "PRAGMA page_size") == [(8192,)]
    assert raw(tmp_path / "old.db", "SELECT id, last_seq FROM sessions") == [("s1", 0)]


def _as_version_2(path: Path) -> None:
    """Give a current file the session indexes and no expiry minutes, as version 2 had."""
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            DROP TRIGGER sessions_expiry_new;
            DROP TRIGGER sessions_expiry_moved;
            DROP INDEX sessions_expiry;
            DROP INDEX sessions_updated;
            ALTER TABLE sessions DROP COLUMN expiry_bucket;
            CREATE INDEX sessions_updated ON sessions (updated_at, id);
            CREATE INDEX sessions_expires ON sessions (expires_at, id);
            PRAGMA user_version = 2;
            """
        )


def test_a_version_2_file_is_upgraded_with_its_sessions(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sessions = varied_sessions()
    first = SqliteBackend.open(str(path), {})
    store_all(first, [(s, []) for s in sessions])
    first.close()
    _as_version_2(path)
    upgraded = SqliteBackend.open(str(path), {})
    try:
        assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert ("sessions_expires",) not in raw(path, "SELECT name FROM sqlite_schema")
        upgraded.begin(False)
        sort = SessionSort.parse("-updated_at")
        got = upgraded.query_sessions(SessionFilter(include_expired=True), sort, 1000, None, NOW)
        assert [s.id for s in got] == reference(sessions, SessionFilter(include_expired=True), sort)
        expired = sorted(s.id for s in sessions if s.expires_at and s.expires_at <= NOW)
        assert expired
        assert sorted(upgraded.expired_ids(NOW)) == expired
        upgraded.commit()
    finally:
        upgraded.close()


def test_expired_sessions_are_found_exactly_whatever_moved_their_expiry(
    backend: SqliteBackend,
) -> None:
    rnd = random.Random(3)
    offsets = [timedelta(seconds=rnd.randrange(-300, 300)) for _ in range(60)]
    sessions = [
        make_session(f"s{i:02d}", expires_at=NOW + at, ttl=timedelta(minutes=5))
        for i, at in enumerate(offsets)
    ]
    sessions[0] = dataclasses.replace(sessions[0], expires_at=None, ttl=None)
    store_all(backend, [(s, []) for s in sessions])
    for round_ in range(3):  # expiries moved by seconds (often within their minute)
        moved = []
        with writing(backend):
            for s in sessions:
                backend.get_session(s.id)
                shift = timedelta(seconds=rnd.randrange(-90, 90))
                new = dataclasses.replace(
                    s,
                    expires_at=None
                    if round_ == 1 and rnd.random() < 0.2
                    else (s.expires_at or NOW) + shift,
                    version=s.version + 1,
                )
                backend.put_session(new, new=False)
                moved.append(new)
        sessions = moved
        backend.begin(False)
        for cutoff in range(-400, 400, 7):
            now = NOW + timedelta(seconds=cutoff)
            want = sorted(
                (s.expires_at, s.id) for s in sessions if s.expires_at and s.expires_at <= now
            )
            assert backend.expired_ids(now) == [sid for _, sid in want], (round_, cutoff)
        backend.commit()


def test_a_foreign_database_with_a_sessions_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sessions (token TEXT)")
    with pytest.raises(StoreUnavailableError, match=r"other.db.*chatkeep schema"):
        SqliteBackend.open(str(path), {})


def test_a_directory_that_cannot_be_made_is_reported(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailableError, match=r"directory.*file/chat.db"):
        SqliteBackend.open(str(tmp_path / "file" / "chat.db"), {})


def test_a_locked_database_is_unavailable_not_a_crash(db_path: Path) -> None:
    first = SqliteBackend.open(str(db_path), {"busy_timeout": "0"})
    second = SqliteBackend.open(str(db_path), {"busy_timeout": "0"})
    try:
        first.begin(True)
        with pytest.raises(StoreUnavailableError, match=r"chat.db.*locked"):
            second.begin(True)
        first.rollback()
        second.begin(True)
        second.rollback()
    finally:
        first.close()
        second.close()


def test_rollback_undoes_every_write(backend: SqliteBackend, db_path: Path) -> None:
    kept = make_session("kept", metadata={"topic": "stay"})
    store_all(backend, [(kept, [make_message("kept", 1, "first words")])])
    backend.begin(True)
    backend.put_session(make_session("new"), new=True)
    backend.insert_messages("kept", [make_message("kept", 2, "second words")])
    backend.put_session(make_session("kept", metadata={"topic": "gone"}), new=False)
    backend.drop_oldest("kept", 1)
    backend.rollback()
    backend.begin(False)
    assert backend.get_session("new") is None
    assert backend.get_session("kept") == kept
    assert [
        m.seq
        for m in backend.read_messages(
            "kept", after_seq=None, before_seq=None, limit=None, newest=False
        )
    ] == [1]
    assert [h.session.id for h in backend.search(["stay"], None, True, 10, NOW)] == ["kept"]
    assert backend.search(["second"], None, True, 10, NOW) == []
    with pytest.raises(RuntimeError, match="expected no open transaction"):
        backend.begin(True)
    backend.rollback()


def test_optimize_runs_between_begin_and_commit(backend: SqliteBackend, db_path: Path) -> None:
    store_all(backend, [(make_session("s"), [make_message("s", 1, "words to merge")])])
    with writing(backend):
        done = backend.optimize()
    assert any("VACUUM" in step for step in done)
    assert raw(db_path, "SELECT count(*) FROM messages") == [(1,)]
    assert Path(f"{db_path}-wal").stat().st_size == 0


# -- listing: the SQL must answer as core.query.matches ---------------------------
METADATA_VALUES: list[JSON] = [
    1, 1.0, True, "1", 0, False, None, 2.5, 2**70, -(2**63), "text",
    [1, 2], [1, True], [], {"x": 1, "y": [2]}, {"y": [2], "x": 1.0}, {}, "[1,2]", "{}",
]  # fmt: skip


def varied_sessions(count: int = 48) -> list[Session]:
    return listing_reference.varied_sessions(
        METADATA_VALUES, count=count, metadata_chance=0.8, name=lambda rnd, i: f"s{i:02d}"
    )


def filters() -> list[SessionFilter]:
    return listing_reference.filters(METADATA_VALUES)


def test_listing_filters_sorts_and_pages_exactly_as_the_reference(backend: SqliteBackend) -> None:
    sessions = varied_sessions()
    store_all(backend, [(s, []) for s in sessions])
    backend.begin(False)
    compared = 0
    for flt in filters():
        for sort in SORTS:
            want = reference(sessions, flt, sort)
            got = backend.query_sessions(flt, sort, 1000, None, NOW)
            assert [s.id for s in got] == want, (flt, sort)
            assert got == [s for i in want for s in sessions if s.id == i]
            pages: list[str] = []
            cursor = None
            while page := backend.query_sessions(flt, sort, 7, cursor, NOW):
                pages += [s.id for s in page]
                cursor = Cursor(sort, sort_value(page[-1], sort), page[-1].id)
            assert pages == want
            compared += len(want)
    backend.commit()
    assert compared > 1000


def test_metadata_equality_is_python_equality_of_the_decoded_json(backend: SqliteBackend) -> None:
    values: dict[str, JSON] = {
        "int": 1, "float": 1.0, "true": True, "text": "1", "list": [1], "big": 2**64,
        "obj": {"a": 1, "b": 2},
    }  # fmt: skip
    store_all(backend, [(make_session(k, metadata={"n": v}), []) for k, v in values.items()])

    def chosen(value: object) -> set[str]:
        flt = SessionFilter(metadata={"n": value})  # type: ignore[dict-item]
        return {s.id for s in backend.query_sessions(flt, SessionSort(), 100, None, NOW)}

    backend.begin(False)
    assert chosen(1) == chosen(True) == chosen(1.0) == {"int", "float", "true"}
    assert chosen("1") == {"text"}
    assert chosen([True]) == {"list"}
    assert chosen(2**64) == chosen(float(2**64)) == {"big"}
    assert chosen(2**64 + 1) == set()
    assert chosen({"b": 2, "a": 1.0}) == {"obj"}
    assert chosen((1,)) == chosen({1}) == set()
    backend.commit()


# -- search: FTS5 must answer as words() says ------------------------------------
HISTORY_TEXT = {
    "plain": (["alpha beta", "alpha", "gamma alpha", "alpha again"], {"topic": "release"}),
    "split": (["alpha only", "beta only"], {}),
    "greek": (["ᾶ μόνο", "Ωμέγα"], {"lang": "ελληνικά"}),
    "meta": ([], {"topic": "release notes", "n": 5}),
    "ligature": (["ﬁnal draft"], {}),
    "tagged": (["bonjour"], {}),
}


def search_history() -> History:
    out = []
    for i, (sid, (texts, metadata)) in enumerate(HISTORY_TEXT.items()):
        session = make_session(sid, minutes=i, metadata=metadata, owner="o" if i % 2 else None)
        messages = [make_message(sid, n + 1, t) for n, t in enumerate(texts)]
        if sid == "tagged":
            messages[0] = make_message(sid, 1, "bonjour", lang="french")
        out.append((session, messages))
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
    "ελληνικά", "final", "fi", "bonjour french", "french", "5", "missing", "alpha missing",
]  # fmt: skip


@pytest.mark.parametrize("owner", [None, "o"])
@pytest.mark.parametrize("query", QUERIES)
def test_search_answers_as_the_words_of_each_message(
    backend: SqliteBackend, query: str, owner: str | None
) -> None:
    history = search_history()
    store_all(backend, history)
    terms = search_terms(query)
    backend.begin(False)
    hits = backend.search(terms, owner, True, 20, NOW)
    backend.commit()
    assert [(h.session.id, [m.seq for m in h.messages]) for h in hits] == expected_hits(
        history, terms, owner
    )
    stored = {session.id: (session, messages) for session, messages in history}
    for hit in hits:
        session, messages = stored[hit.session.id]
        assert hit.session == session
        assert all(m in messages for m in hit.messages)


def test_search_leaves_out_expired_sessions_and_stops_at_the_limit(backend: SqliteBackend) -> None:
    history = [
        (
            make_session(f"s{i}", minutes=i, expires_at=NOW + timedelta(minutes=i - 2)),
            [make_message(f"s{i}", 1, "common word")],
        )
        for i in range(5)
    ]
    store_all(backend, history)
    backend.begin(False)
    live = backend.search(["common"], None, False, 10, NOW)
    limited = backend.search(["common"], None, True, 3, NOW)
    backend.commit()
    assert [h.session.id for h in live] == ["s4", "s3"]
    assert [h.session.id for h in limited] == ["s4", "s3", "s2"]


@pytest.mark.parametrize(
    "terms",
    [['"'], ["*"], ["alpha*"], ["NEAR(alpha beta)"], ["-alpha"], ["alpha OR"], ["col:alpha"],
     ["'"], ["("], [""], ["ALPHA"], ["alpha", '"quoted"', "^x"]],
)  # fmt: skip
def test_search_terms_are_never_fts_syntax(backend: SqliteBackend, terms: list[str]) -> None:
    history = search_history()
    store_all(backend, history)
    backend.begin(False)
    assert backend.search(terms, None, True, 20, NOW) == []
    backend.commit()


async def test_a_query_full_of_fts_syntax_finds_its_words(tmp_path: Path) -> None:
    text = 'he said "hi" NEAR(x y) foo* -bar OR baz:qux ^start'
    async with chatkeep.open_store(f"sqlite:///{tmp_path}/chat.db") as store:
        session = await store.create_session()
        await store.append_messages(session.id, NewMessage(role="user", content=text))
        await store.append_messages(session.id, NewMessage(role="user", content="he said"))
        hits = await store.search_sessions(text)
        assert [(h.session.id, [m.seq for m in h.messages]) for h in hits] == [(session.id, [1])]
        assert await store.search_sessions('"unmatched AND (') == []


def index_counts(path: Path) -> tuple[int, int, int, int, int]:
    """Messages, message index rows, messages queued for the index, sessions, session
    index rows."""
    ((messages, indexed, queued, sessions, session_rows),) = raw(
        path,
        "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM message_search), "
        "(SELECT count(*) FROM message_search_queue), "
        "(SELECT count(*) FROM sessions), (SELECT count(*) FROM session_search)",
    )
    return messages, indexed, queued, sessions, session_rows  # type: ignore[return-value]


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "queued"])
def test_the_search_index_follows_every_deletion(
    backend: SqliteBackend, db_path: Path, indexed: bool
) -> None:
    history = search_history()
    store_all(backend, history)
    assert index_counts(db_path) == (10, 0, 10, 6, 3)
    if indexed:
        with writing(backend):
            assert backend.search(["nothing"], None, True, 10, NOW) == []
        assert index_counts(db_path) == (10, 10, 0, 6, 3)
    with writing(backend):
        backend.drop_oldest("plain", 2)
        backend.delete_message("greek", 2)
        backend.clear_messages("split")
        backend.delete_session("tagged")
        meta = backend.get_session("meta")
        assert meta is not None
        backend.put_session(make_session("meta", metadata={"topic": "renamed"}), new=False)
        backend.put_session(make_session("plain", tags=frozenset({"x"})), new=False)
    assert index_counts(db_path) == (4, 4, 0, 5, 2) if indexed else (4, 0, 4, 5, 2)
    backend.begin(False)
    assert backend.search(["release"], None, True, 10, NOW) == []
    assert [h.session.id for h in backend.search(["renamed"], None, True, 10, NOW)] == ["meta"]
    tagged = backend.query_sessions(
        SessionFilter(tags=frozenset({"x"}), include_expired=True), SessionSort(), 10, None, NOW
    )
    assert [s.id for s in tagged] == ["plain"]
    backend.commit()
