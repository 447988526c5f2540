"""The operations of the Store protocol, written once for every backend.

Each is a generator of backend calls (see :mod:`chatkeep.stores.calls`) run inside one
backend transaction. Every check happens before the first write, so a failing call
changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

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
from chatkeep.stores import calls as call
from chatkeep.stores.backend import Counts
from chatkeep.stores.base import Appended
from chatkeep.stores.calls import Op
from chatkeep.stores.outbox import Change, Verdict, verdict

_SCAN_PAGE = 500


class Context(NamedTuple):
    """What every operation gets besides its arguments: the time and the rules' settings.

    A named tuple: one is made for every operation, in half a frozen dataclass's time.
    """

    now: datetime
    limits: Limits
    defaults: rules.SessionDefaults


Operation = Callable[..., Op[object]]


def _live(ctx: Context, session_id: object) -> Op[Session]:
    sid = check_id(session_id, "session_id")
    return rules.live((yield from call.get_session(sid)), sid, ctx.now)


def _existing(session_id: object) -> Op[Session]:
    sid = check_id(session_id, "session_id")
    return rules.existing((yield from call.get_session(sid)), sid)


def create(ctx: Context, fields: Mapping[str, object]) -> Op[Session]:
    session = rules.new_session(now=ctx.now, defaults=ctx.defaults, limits=ctx.limits, **fields)  # type: ignore[arg-type]
    if (yield from call.get_session(session.id)) is not None:
        raise SessionExistsError(session.id)
    yield from call.put_session(session, new=True)
    return session


def get(ctx: Context, session_id: object) -> Op[Session]:
    return (yield from _live(ctx, session_id))


def _save_update(old: Session, new: Session) -> Op[None]:
    if new.message_count < old.message_count:
        yield from call.drop_oldest(old.id, old.message_count - new.message_count)
    yield from call.put_session(new, new=False)


def update(
    ctx: Context,
    session_id: object,
    changes: SessionUpdate | Mapping[str, object],
    expected_version: int | None,
) -> Op[Session]:
    session = yield from _live(ctx, session_id)
    if expected_version is not None:
        check_positive_int(expected_version, "expected_version")
    rules.check_version(session, expected_version)
    new = rules.updated(session, rules.as_update(changes), ctx.limits, ctx.now)
    yield from _save_update(session, new)
    return new


def delete(ctx: Context, session_id: object) -> Op[bool]:
    sid = check_id(session_id, "session_id")
    if (yield from call.get_session(sid)) is None:
        return False
    yield from call.delete_session(sid)
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
    ctx: Context,
    flt: SessionFilter | None,
    sort: SessionSort | str | None,
    limit: int,
    cursor: str | None,
) -> Op[SessionPage]:
    checked = _check_filter(flt)
    order = check_sort(sort)
    size = check_limit(limit)
    mark = None if cursor is None else Cursor.decode(_text(cursor, "cursor"), order)
    rows = yield from call.query_sessions(checked, order, size + 1, mark, ctx.now)
    return cut_page(rows, order, size)


def _matching(ctx: Context, flt: SessionFilter) -> Op[list[Session]]:
    """Every session matching ``flt``, oldest first, read in pages."""
    order = SessionSort.parse("created_at")
    found: list[Session] = []
    mark: Cursor | None = None
    while True:
        rows = yield from call.query_sessions(flt, order, _SCAN_PAGE, mark, ctx.now)
        found.extend(rows)
        if len(rows) < _SCAN_PAGE:
            return found
        mark = Cursor(order, rows[-1].created_at, rows[-1].id)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(field, "must be a string")
    return value


def search(
    ctx: Context, query: str, owner: str | None, limit: int, include_expired: bool
) -> Op[list[SearchHit]]:
    terms = search_terms(query)
    return (
        yield from call.search(terms, owner, bool(include_expired), check_limit(limit), ctx.now)
    )


def append(ctx: Context, session_id: object, messages: object) -> Op[Appended]:
    session = yield from _live(ctx, session_id)
    batch = check_new_messages(messages, ctx.limits)
    keys = [m.id for m in batch if m.id is not None]
    stored = (yield from call.find_messages(session.id, keys)) if keys else {}
    plan = rules.plan_append(session, batch, stored, ctx.now)
    if plan.changed:
        yield from call.insert_messages(session.id, plan.insert)
        if plan.drop_oldest:
            yield from call.drop_oldest(session.id, plan.drop_oldest)
        yield from call.put_session(plan.session, new=False)
    return Appended(plan.session, plan.results, plan.insert)


def _opt_count(value: object, field: str) -> int | None:
    if value is None:
        return None
    count = check_positive_int(value, field)
    return min(count, MAX_WINDOW)


def _opt_seq(value: object, field: str) -> int | None:
    return None if value is None else check_positive_int(value, field, allow_zero=True)


def read(
    ctx: Context,
    session_id: object,
    last: object,
    after_seq: object,
    before_seq: object,
    limit: object,
) -> Op[list[Message]]:
    session = yield from _live(ctx, session_id)
    n_last, n_limit = _opt_count(last, "last"), _opt_count(limit, "limit")
    if n_last is not None and n_limit is not None:
        raise InvalidInputError("last", "cannot be combined with limit")
    return (
        yield from call.read_messages(
            session.id,
            after_seq=_opt_seq(after_seq, "after_seq"),
            before_seq=_opt_seq(before_seq, "before_seq"),
            limit=n_last if n_last is not None else n_limit,
            newest=n_last is not None,
        )
    )


def pop(ctx: Context, session_id: object) -> Op[Message | None]:
    session = yield from _live(ctx, session_id)
    newest = yield from call.read_messages(session.id, limit=1, newest=True)
    if not newest:
        return None
    yield from call.delete_message(session.id, newest[0].seq)
    renewed = rules.renewed(session, ctx.now, message_count=session.message_count - 1)
    yield from call.put_session(renewed, new=False)
    return newest[0]


def clear(ctx: Context, session_id: object) -> Op[int]:
    session = yield from _live(ctx, session_id)
    if session.message_count == 0:
        return 0
    yield from call.clear_messages(session.id)
    yield from call.put_session(rules.renewed(session, ctx.now, message_count=0), new=False)
    return session.message_count


def touch(ctx: Context, session_id: object) -> Op[Session]:
    session = rules.renewed((yield from _live(ctx, session_id)), ctx.now)
    yield from call.put_session(session, new=False)
    return session


def _set_expiry(ctx: Context, session: Session, at: datetime | None) -> Op[Session]:
    new = dataclasses.replace(
        session, expires_at=at, updated_at=ctx.now, version=session.version + 1
    )
    yield from call.put_session(new, new=False)
    return new


def set_expiration(ctx: Context, session_id: object, at: object) -> Op[Session]:
    session = yield from _existing(session_id)
    return (yield from _set_expiry(ctx, session, None if at is None else check_when(at, "at")))


def extend_expiration(ctx: Context, session_id: object, by: object) -> Op[Session]:
    session = yield from _existing(session_id)
    if not isinstance(by, timedelta) or abs(by) > MAX_TTL:
        raise InvalidInputError("by", f"must be a timedelta of at most {MAX_TTL.days} days")
    at = None if session.expires_at is None else session.expires_at + by
    return (yield from _set_expiry(ctx, session, at))


def get_lock(ctx: Context, session_id: object) -> Op[SessionLock | None]:
    return rules.lock_live((yield from _live(ctx, session_id)).lock, ctx.now)


def set_lock(ctx: Context, session_id: object, agent: object, ttl: object) -> Op[SessionLock]:
    session = yield from _live(ctx, session_id)
    lock = rules.new_lock(agent, ttl, ctx.limits, ctx.now)
    yield from call.put_session(rules.renewed(session, ctx.now, lock=lock), new=False)
    return lock


def clear_lock(ctx: Context, session_id: object) -> Op[bool]:
    session = yield from _live(ctx, session_id)
    held = rules.lock_live(session.lock, ctx.now) is not None
    if session.lock is not None:
        yield from call.put_session(rules.renewed(session, ctx.now, lock=None), new=False)
    return held


def bulk_update(
    ctx: Context, flt: SessionFilter, changes: SessionUpdate | Mapping[str, object]
) -> Op[int]:
    update_ = rules.as_update(changes)
    checked = _check_filter(flt)
    pairs = [
        (s, rules.updated(s, update_, ctx.limits, ctx.now))
        for s in (yield from _matching(ctx, checked))
    ]
    for old, new in pairs:
        yield from _save_update(old, new)
    return len(pairs)


def expired_ids(ctx: Context) -> Op[list[str]]:
    return (yield from call.expired_ids(ctx.now))


def cleanup(ctx: Context, older_than: object, expired_before: object = None) -> Op[int]:
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise InvalidInputError("older_than", "must be a timedelta >= 0")
    until = ctx.now
    if expired_before is not None:
        until = min(until, check_when(expired_before, "expired_before"))
    ids = yield from call.expired_ids(until - older_than)
    for sid in ids:
        yield from call.delete_session(sid)
    return len(ids)


def export_page(
    ctx: Context, flt: SessionFilter | None, cursor: Cursor | None, size: int
) -> Op[list[tuple[Session, list[Message]]]]:
    order = SessionSort.parse("created_at")
    rows = yield from call.query_sessions(_check_filter(flt), order, size, cursor, ctx.now)
    page = []
    for session in rows:
        page.append((session, (yield from call.read_messages(session.id))))
    return page


def import_one(
    ctx: Context,
    session: Session,
    messages: Sequence[Message],
    strategy: str,
    dry_run: bool,
    shadow: Session | None,
) -> Op[bool]:
    """Restore one exported session; returns False if the strategy skips it.

    ``shadow`` is what an earlier line of the same dry run would have restored.
    """
    current = shadow or (yield from call.get_session(session.id))
    if current is not None:
        if strategy == "skip_existing":
            return False
        if strategy == "update_newer" and session.updated_at <= current.updated_at:
            return False
    if dry_run:
        return True
    if current is not None:
        yield from call.delete_session(session.id)
    yield from call.put_session(session, new=True)
    if messages:
        yield from call.insert_messages(session.id, messages)
    return True


def counts(ctx: Context) -> Op[Counts]:
    return (yield from call.counts(ctx.now))


def check(ctx: Context) -> Op[tuple[list[str], dict[str, JSON]]]:
    return (yield from call.check())


def optimize(ctx: Context) -> Op[list[str]]:
    return (yield from call.optimize())


def load_session(ctx: Context, session_id: str) -> Op[tuple[Session, list[Message]] | None]:
    """The session (expired or not) with every message; None if there is none."""
    session = yield from call.get_session(check_id(session_id, "session_id"))
    if session is None:
        return None
    return session, (yield from call.read_messages(session.id))


def apply_changes(
    ctx: Context, groups: Sequence[tuple[Change, Sequence[Change]]]
) -> Op[list[list[Verdict]]]:
    """Apply a batch of outbox changes as one operation: each group is a merged change
    and the changes it stands for. A merged change the copy holds in part (its verdict
    is SKIP while it stands for several) is applied change by change instead. Returns,
    for each group, the verdict of each change it stands for."""
    out: list[list[Verdict]] = []
    for merged_change, members in groups:
        decided = yield from apply_change(ctx, merged_change)
        if decided is Verdict.SKIP and len(members) > 1:
            each = []
            for change in members:
                each.append((yield from apply_change(ctx, change)))
            out.append(each)
        else:
            out.append([decided] * len(members))
    return out


def apply_change(ctx: Context, change: Change) -> Op[Verdict]:
    """Bring the copy of a session up to date with ``change`` (an outbox entry), if
    :func:`~chatkeep.stores.outbox.verdict` says it applies; returns the verdict."""
    sid = change.session_id
    current = yield from call.get_session(sid)
    decided = verdict(current, change)
    if decided is not Verdict.APPLY:
        return decided
    if change.session is None:
        yield from call.delete_session(sid)
        return decided
    if change.whole:
        if current is not None:
            yield from call.delete_session(sid)
        yield from call.put_session(change.session, new=True)
    else:
        if change.wiped:
            yield from call.clear_messages(sid)
        elif change.floor:
            oldest = yield from call.read_messages(sid, before_seq=change.floor + 1)
            if oldest:
                yield from call.drop_oldest(sid, len(oldest))
        for seq in change.gone:
            if not change.wiped and seq > change.floor:
                yield from call.delete_message(sid, seq)
    if change.added:
        yield from call.insert_messages(sid, change.added)
    if not change.whole:
        yield from call.put_session(change.session, new=False)
    return decided
