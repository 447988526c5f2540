"""MemoryBackend: the undo log, misuse of transactions, and what only this backend does."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from chatkeep.core import rules
from chatkeep.core.models import JSON, UNSET, Message, NewMessage, Session
from chatkeep.core.query import Cursor, SessionFilter, SessionSort
from chatkeep.core.validation import Limits, check_new_messages
from chatkeep.errors import SessionExistsError, SessionNotFoundError
from chatkeep.stores.memory import MemoryBackend

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def session(sid: str, *, max_messages: int = 1000, owner: str | None = None) -> Session:
    return rules.new_session(
        now=NOW,
        defaults=rules.SessionDefaults(),
        limits=Limits(),
        id=sid,
        owner=owner,
        device_id=None,
        persistence=UNSET,
        ttl=UNSET,
        max_messages=max_messages,
        metadata={"topic": sid},
        tags=None,
    )


def append(b: MemoryBackend, sid: str, *texts: str) -> list[Message]:
    """Append as a store does: insert, trim to the window, save the session."""
    current = b.get_session(sid)
    assert current is not None
    batch = check_new_messages([NewMessage("user", t) for t in texts], Limits())
    plan = rules.plan_append(current, batch, {}, NOW)
    b.insert_messages(sid, plan.insert)
    if plan.drop_oldest:
        b.drop_oldest(sid, plan.drop_oldest)
    b.put_session(plan.session, new=False)
    return plan.insert


def committed(b: MemoryBackend, fn: Callable[[], object]) -> None:
    b.begin(write=True)
    fn()
    b.commit()


@pytest.fixture
def backend() -> MemoryBackend:
    """Sessions "a" (window 5, 7 messages appended) and "b" (3 messages)."""
    b = MemoryBackend()
    b.begin(write=True)
    b.put_session(session("a", max_messages=5), new=True)
    b.put_session(session("b"), new=True)
    append(b, "a", *(f"a{i}" for i in range(7)))
    append(b, "b", "b0", "b1", "b2")
    b.commit()
    return b


def mixed_writes(b: MemoryBackend) -> None:
    """One of every mutating primitive, several touching the same session."""
    b.put_session(session("c"), new=True)
    append(b, "c", "c0", "c1")
    append(b, "a", "a7", "a8")
    b.delete_message("b", 2)
    b.clear_messages("b")
    append(b, "b", "b3")
    b.delete_session("c")
    b.put_session(session("c", owner="someone"), new=True)
    append(b, "c", "again")
    b.delete_session("a")
    b.put_session(session("a"), new=True)
    current = b.get_session("b")
    assert current is not None
    b.drop_oldest("b", 1)
    b.put_session(dataclasses.replace(current, message_count=0, version=9), new=False)


def test_rollback_restores_exactly_the_state_at_begin(backend: MemoryBackend) -> None:
    before = backend.contents()
    backend.begin(write=True)
    mixed_writes(backend)
    assert backend.contents() != before
    backend.rollback()
    assert backend.contents() == before
    assert backend.check() == ([], {"sessions": 2, "messages": 8})
    ids = [m.id for m in before["a"][1]]
    assert backend.find_messages("a", ids) == {m.id: m for m in before["a"][1]}


def test_commit_keeps_what_the_transaction_saw(backend: MemoryBackend) -> None:
    backend.begin(write=True)
    mixed_writes(backend)
    inside = backend.contents()
    backend.commit()
    assert backend.contents() == inside
    assert sorted(inside) == ["a", "b", "c"]
    assert [m.content for m in inside["c"][1]] == ["again"]
    assert inside["a"][1] == []
    assert backend.check()[0] == []


def test_a_rollback_after_a_commit_undoes_only_the_later_transaction(
    backend: MemoryBackend,
) -> None:
    committed(backend, lambda: append(backend, "b", "kept"))
    after_first = backend.contents()
    backend.begin(write=True)
    append(backend, "b", "dropped")
    backend.rollback()
    assert backend.contents() == after_first
    assert [m.content for m in after_first["b"][1]][-1] == "kept"


def test_rolled_back_messages_leave_no_trace_in_the_id_index(backend: MemoryBackend) -> None:
    backend.begin(write=True)
    added = append(backend, "b", "x")
    backend.rollback()
    assert backend.find_messages("b", [added[0].id]) == {}
    committed(backend, lambda: backend.insert_messages("b", added))
    assert backend.find_messages("b", [added[0].id]) == {added[0].id: added[0]}


def test_writes_need_an_open_write_transaction(backend: MemoryBackend) -> None:
    with pytest.raises(RuntimeError, match="expected an open write transaction"):
        backend.clear_messages("a")
    backend.begin(write=False)
    with pytest.raises(RuntimeError, match="expected an open write transaction"):
        backend.delete_session("a")
    backend.commit()
    assert len(backend.contents()["a"][1]) == 5


def test_transactions_do_not_nest(backend: MemoryBackend) -> None:
    backend.begin(write=True)
    with pytest.raises(RuntimeError, match="expected no open transaction"):
        backend.begin(write=False)
    backend.commit()
    with pytest.raises(RuntimeError, match="expected an open transaction"):
        backend.commit()
    backend.rollback()  # no transaction: nothing to undo, and no error


def test_put_session_refuses_a_duplicate_or_a_missing_record(backend: MemoryBackend) -> None:
    before = backend.contents()
    backend.begin(write=True)
    with pytest.raises(SessionExistsError):
        backend.put_session(session("a"), new=True)
    with pytest.raises(SessionNotFoundError):
        backend.put_session(session("zz"), new=False)
    with pytest.raises(SessionNotFoundError):
        backend.insert_messages("zz", [])
    backend.commit()
    assert backend.contents() == before


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: dataclasses.replace(m, seq=1), "expected a seq above 8"),
        (lambda m: dataclasses.replace(m, session_id="b"), "expected a message of 'a'"),
        (lambda m: dataclasses.replace(m, seq=99), "expected a new message id"),
    ],
    ids=["old-seq", "other-session", "same-id"],
)
def test_insert_refuses_messages_that_break_the_order_and_changes_nothing(
    backend: MemoryBackend, change: Callable[[Message], Message], reason: str
) -> None:
    before = backend.contents()
    newest = before["a"][1][-1]
    fresh = dataclasses.replace(newest, id="fresh", seq=8)
    backend.begin(write=True)
    with pytest.raises(RuntimeError, match=reason):
        backend.insert_messages("a", [fresh, change(newest)])
    backend.commit()
    assert backend.contents() == before


@pytest.mark.parametrize(
    ("after", "before", "limit", "newest", "expected"),
    [
        (None, None, None, False, [3, 4, 5, 6, 7]),
        (4, None, None, False, [5, 6, 7]),
        (None, 5, None, False, [3, 4]),
        (3, 7, None, False, [4, 5, 6]),
        (None, None, 2, False, [3, 4]),
        (None, None, 2, True, [6, 7]),
        (None, 6, 2, True, [4, 5]),
        (0, 3, None, False, []),
        (7, None, 5, True, []),
        (6, 4, None, False, []),
    ],
)
def test_read_messages_cuts_by_seq(
    backend: MemoryBackend,
    after: int | None,
    before: int | None,
    limit: int | None,
    newest: bool,
    expected: list[int],
) -> None:
    got = backend.read_messages("a", after_seq=after, before_seq=before, limit=limit, newest=newest)
    assert [m.seq for m in got] == expected


def test_deleting_a_missing_seq_or_an_empty_clear_changes_nothing(backend: MemoryBackend) -> None:
    before = backend.contents()
    backend.begin(write=True)
    backend.delete_message("a", 1)
    backend.delete_message("a", 99)
    backend.drop_oldest("a", 0)
    backend.delete_session("nobody")
    backend.commit()
    assert backend.contents() == before


def test_query_sessions_pages_with_the_reference_rules(backend: MemoryBackend) -> None:
    committed(backend, lambda: backend.put_session(session("c", owner="o"), new=True))
    newest_first = SessionSort(descending=True)
    everything = SessionFilter()
    first = backend.query_sessions(everything, newest_first, 2, None, NOW)
    assert [s.id for s in first] == ["c", "b"]
    mark = Cursor(newest_first, first[-1].last_activity_at, first[-1].id)
    assert [s.id for s in backend.query_sessions(everything, newest_first, 2, mark, NOW)] == ["a"]
    owned = backend.query_sessions(SessionFilter(owner="o"), newest_first, 10, None, NOW)
    assert [s.id for s in owned] == ["c"]


def test_search_lists_the_three_newest_matches_and_metadata_hits(backend: MemoryBackend) -> None:
    committed(backend, lambda: append(backend, "b", "x b4", "x b5", "x b6", "x b7"))
    hits = backend.search(["x"], None, False, 10, NOW)
    assert [(h.session.id, [m.content for m in h.messages]) for h in hits] == [
        ("b", ["x b7", "x b6", "x b5"])
    ]
    by_metadata = backend.search(["topic", "a"], None, False, 10, NOW)
    assert [(h.session.id, h.messages) for h in by_metadata] == [("a", [])]
    assert backend.search(["x"], "someone else", False, 10, NOW) == []


def test_expired_sessions_are_found_by_cutoff_and_counted(backend: MemoryBackend) -> None:
    ttl = rules.DEFAULT_TTL
    assert backend.expired_ids(NOW + ttl - timedelta(microseconds=1)) == []
    assert sorted(backend.expired_ids(NOW + ttl)) == ["a", "b"]
    counts = backend.counts(NOW + ttl)
    assert (counts.total_sessions, counts.expired_sessions, counts.total_messages) == (2, 2, 8)
    assert search_ids(backend, NOW + ttl, include_expired=False) == []
    assert search_ids(backend, NOW + ttl, include_expired=True) == ["b", "a"]


def search_ids(b: MemoryBackend, now: datetime, *, include_expired: bool) -> list[str]:
    return [h.session.id for h in b.search(["topic"], None, include_expired, 10, now)]


def test_records_are_kept_read_only(backend: MemoryBackend) -> None:
    given: dict[str, JSON] = {"topic": "c"}
    record = dataclasses.replace(session("c"), metadata=given)
    committed(backend, lambda: backend.put_session(record, new=True))
    given["topic"] = "changed by the caller"
    read = backend.get_session("c")
    assert read is not None
    with pytest.raises(TypeError, match="read-only"):
        read.metadata["more"] = 1
    assert backend.contents()["c"][0].metadata == {"topic": "c"}


def test_check_reports_a_session_record_that_disagrees_with_its_messages(
    backend: MemoryBackend,
) -> None:
    current = backend.get_session("b")
    assert current is not None
    committed(
        backend,
        lambda: backend.put_session(dataclasses.replace(current, message_count=4), new=False),
    )
    issues, details = backend.check()
    assert issues == ["session 'b': message_count is 4 but 3 messages are stored"]
    assert details == {"sessions": 2, "messages": 8}


def test_optimize_has_nothing_to_do_and_close_forgets_everything(backend: MemoryBackend) -> None:
    assert backend.optimize() == ["nothing to optimise in memory"]
    backend.close()
    assert backend.contents() == {}
