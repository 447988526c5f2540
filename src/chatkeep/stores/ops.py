"""The operations of the Store protocol as synchronous functions over a :class:`Backend`.

Each runs inside one backend transaction. Every check happens before the first write,
so a failing call changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chatkeep.core import rules
from chatkeep.core.ids import check_device_id, check_id
from chatkeep.core.models import JSON, Message, Session, SessionLock, SessionUpdate
from chatkeep.core.query import (
    Cursor,
    SearchHit,
    SessionFilter,
    SessionPage,
    SessionSort,
    check_limit,
    check_sort,
    cut_page,
    search_terms,
)
from chatkeep.core.validation import (
    MAX_TTL,
    MAX_WINDOW,
    Limits,
    check_new_messages,
    check_positive_int,
    check_when,
)
from chatkeep.errors import InvalidInputError, SessionExistsError
from chatkeep.stores.backend import Backend
from chatkeep.stores.base import Appended

_SCAN_PAGE = 500


@dataclass(frozen=True, slots=True)
class Context:
    """What every operation gets besides its arguments: the time and the rules' settings."""

    now: datetime
    limits: Limits
    defaults: rules.SessionDefaults


Op = Callable[..., object]


def _live(b: Backend, ctx: Context, session_id: object) -> Session:
    sid = check_id(session_id, "session_id")
    return rules.live(b.get_session(sid), sid, ctx.now)


def _existing(b: Backend, session_id: object) -> Session:
    sid = check_id(session_id, "session_id")
    return rules.existing(b.get_session(sid), sid)


def create(b: Backend, ctx: Context, fields: Mapping[str, object]) -> Session:
    session = rules.new_session(now=ctx.now, defaults=ctx.defaults, limits=ctx.limits, **fields)  # type: ignore[arg-type]
    if b.get_session(session.id) is not None:
        raise SessionExistsError(session.id)
    b.put_session(session, new=True)
    return session


def get(b: Backend, ctx: Context, session_id: object) -> Session:
    return _live(b, ctx, session_id)


def _save_update(b: Backend, old: Session, new: Session) -> None:
    if new.message_count < old.message_count:
        b.drop_oldest(old.id, old.message_count - new.message_count)
    b.put_session(new, new=False)


def update(
    b: Backend,
    ctx: Context,
    session_id: object,
    changes: SessionUpdate | Mapping[str, object],
    expected_version: int | None,
) -> Session:
    session = _live(b, ctx, session_id)
    if expected_version is not None:
        check_positive_int(expected_version, "expected_version")
    rules.check_version(session, expected_version)
    new = rules.updated(session, rules.as_update(changes), ctx.limits, ctx.now)
    _save_update(b, session, new)
    return new


def delete(b: Backend, ctx: Context, session_id: object) -> bool:
    sid = check_id(session_id, "session_id")
    if b.get_session(sid) is None:
        return False
    b.delete_session(sid)
    return True


def _check_filter(flt: object) -> SessionFilter:
    if flt is None:
        return SessionFilter()
    if not isinstance(flt, SessionFilter):
        raise InvalidInputError("filter", "must be a SessionFilter")
    for name in ("created_after", "created_before", "active_after", "active_before"):
        value = getattr(flt, name)
        if value is not None:
            check_when(value, f"filter.{name}")
    if flt.device_id is not None:
        flt = dataclasses.replace(flt, device_id=check_device_id(flt.device_id, "filter.device_id"))
    return dataclasses.replace(flt, tags=frozenset(flt.tags), metadata=dict(flt.metadata))


def list_sessions(
    b: Backend,
    ctx: Context,
    flt: SessionFilter | None,
    sort: SessionSort | str | None,
    limit: int,
    cursor: str | None,
) -> SessionPage:
    checked = _check_filter(flt)
    order = check_sort(sort)
    size = check_limit(limit)
    mark = None if cursor is None else Cursor.decode(_text(cursor, "cursor"), order)
    rows = b.query_sessions(checked, order, size + 1, mark, ctx.now)
    return cut_page(rows, order, size)


def iter_matching(b: Backend, ctx: Context, flt: SessionFilter) -> Iterable[Session]:
    """Every session matching ``flt``, oldest first, read in pages."""
    order = SessionSort.parse("created_at")
    mark: Cursor | None = None
    while True:
        rows = b.query_sessions(flt, order, _SCAN_PAGE, mark, ctx.now)
        yield from rows
        if len(rows) < _SCAN_PAGE:
            return
        mark = Cursor(order, rows[-1].created_at, rows[-1].id)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(field, "must be a string")
    return value


def search(
    b: Backend, ctx: Context, query: str, owner: str | None, limit: int, include_expired: bool
) -> list[SearchHit]:
    terms = search_terms(query)
    return b.search(terms, owner, bool(include_expired), check_limit(limit), ctx.now)


def append(b: Backend, ctx: Context, session_id: object, messages: object) -> Appended:
    session = _live(b, ctx, session_id)
    batch = check_new_messages(messages, ctx.limits)
    keys = [m.id for m in batch if m.id is not None]
    stored = b.find_messages(session.id, keys) if keys else {}
    plan = rules.plan_append(session, batch, stored, ctx.now)
    if plan.changed:
        b.insert_messages(session.id, plan.insert)
        if plan.drop_oldest:
            b.drop_oldest(session.id, plan.drop_oldest)
        b.put_session(plan.session, new=False)
    return Appended(plan.session, plan.results, plan.insert)


def _opt_count(value: object, field: str) -> int | None:
    if value is None:
        return None
    count = check_positive_int(value, field)
    return min(count, MAX_WINDOW)


def _opt_seq(value: object, field: str) -> int | None:
    return None if value is None else check_positive_int(value, field, allow_zero=True)


def read(
    b: Backend,
    ctx: Context,
    session_id: object,
    last: object,
    after_seq: object,
    before_seq: object,
    limit: object,
) -> list[Message]:
    session = _live(b, ctx, session_id)
    n_last, n_limit = _opt_count(last, "last"), _opt_count(limit, "limit")
    if n_last is not None and n_limit is not None:
        raise InvalidInputError("last", "cannot be combined with limit")
    return b.read_messages(
        session.id,
        after_seq=_opt_seq(after_seq, "after_seq"),
        before_seq=_opt_seq(before_seq, "before_seq"),
        limit=n_last if n_last is not None else n_limit,
        newest=n_last is not None,
    )


def pop(b: Backend, ctx: Context, session_id: object) -> Message | None:
    session = _live(b, ctx, session_id)
    newest = b.read_messages(session.id, after_seq=None, before_seq=None, limit=1, newest=True)
    if not newest:
        return None
    b.delete_message(session.id, newest[0].seq)
    b.put_session(
        rules.renewed(session, ctx.now, message_count=session.message_count - 1), new=False
    )
    return newest[0]


def clear(b: Backend, ctx: Context, session_id: object) -> int:
    session = _live(b, ctx, session_id)
    if session.message_count == 0:
        return 0
    b.clear_messages(session.id)
    b.put_session(rules.renewed(session, ctx.now, message_count=0), new=False)
    return session.message_count


def touch(b: Backend, ctx: Context, session_id: object) -> Session:
    session = rules.renewed(_live(b, ctx, session_id), ctx.now)
    b.put_session(session, new=False)
    return session


def _set_expiry(b: Backend, ctx: Context, session: Session, at: datetime | None) -> Session:
    new = dataclasses.replace(
        session, expires_at=at, updated_at=ctx.now, version=session.version + 1
    )
    b.put_session(new, new=False)
    return new


def set_expiration(b: Backend, ctx: Context, session_id: object, at: object) -> Session:
    session = _existing(b, session_id)
    return _set_expiry(b, ctx, session, None if at is None else check_when(at, "at"))


def extend_expiration(b: Backend, ctx: Context, session_id: object, by: object) -> Session:
    session = _existing(b, session_id)
    if not isinstance(by, timedelta) or abs(by) > MAX_TTL:
        raise InvalidInputError("by", f"must be a timedelta of at most {MAX_TTL.days} days")
    at = None if session.expires_at is None else session.expires_at + by
    return _set_expiry(b, ctx, session, at)


def get_lock(b: Backend, ctx: Context, session_id: object) -> SessionLock | None:
    return rules.lock_live(_live(b, ctx, session_id).lock, ctx.now)


def set_lock(
    b: Backend, ctx: Context, session_id: object, agent: object, ttl: object
) -> SessionLock:
    session = _live(b, ctx, session_id)
    lock = rules.new_lock(agent, ttl, ctx.limits, ctx.now)
    b.put_session(rules.renewed(session, ctx.now, lock=lock), new=False)
    return lock


def clear_lock(b: Backend, ctx: Context, session_id: object) -> bool:
    session = _live(b, ctx, session_id)
    held = rules.lock_live(session.lock, ctx.now) is not None
    if session.lock is not None:
        b.put_session(rules.renewed(session, ctx.now, lock=None), new=False)
    return held


def bulk_update(
    b: Backend, ctx: Context, flt: SessionFilter, changes: SessionUpdate | Mapping[str, object]
) -> int:
    update_ = rules.as_update(changes)
    pairs = [
        (s, rules.updated(s, update_, ctx.limits, ctx.now))
        for s in list(iter_matching(b, ctx, _check_filter(flt)))
    ]
    for old, new in pairs:
        _save_update(b, old, new)
    return len(pairs)


def expired_ids(b: Backend, ctx: Context) -> list[str]:
    return b.expired_ids(ctx.now)


def cleanup(b: Backend, ctx: Context, older_than: object) -> int:
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise InvalidInputError("older_than", "must be a timedelta >= 0")
    ids = b.expired_ids(ctx.now - older_than)
    for sid in ids:
        b.delete_session(sid)
    return len(ids)


def export_page(
    b: Backend, ctx: Context, flt: SessionFilter | None, cursor: Cursor | None, size: int
) -> list[tuple[Session, list[Message]]]:
    order = SessionSort.parse("created_at")
    rows = b.query_sessions(_check_filter(flt), order, size, cursor, ctx.now)
    return [
        (s, b.read_messages(s.id, after_seq=None, before_seq=None, limit=None, newest=False))
        for s in rows
    ]


def import_one(
    b: Backend,
    ctx: Context,
    session: Session,
    messages: Sequence[Message],
    strategy: str,
    dry_run: bool,
    shadow: Session | None,
) -> bool:
    """Restore one exported session; returns False if the strategy skips it.

    ``shadow`` is what an earlier line of the same dry run would have restored.
    """
    current = shadow or b.get_session(session.id)
    if current is not None:
        if strategy == "skip_existing":
            return False
        if strategy == "update_newer" and session.updated_at <= current.updated_at:
            return False
    if dry_run:
        return True
    if current is not None:
        b.delete_session(session.id)
    b.put_session(session, new=True)
    if messages:
        b.insert_messages(session.id, messages)
    return True


def check(b: Backend, ctx: Context) -> tuple[list[str], dict[str, JSON]]:
    return b.check()
