"""Counting and exporting a Redis store written behind: the sessions in Redis and those
only in the durable store, each once.

A session in Redis is counted and exported from Redis (its newest copy); the durable
store's rows of sessions in Redis, or deleted there with the deletion not yet synced,
are left out. The durable store is walked in creation order, a page at a time; a row is
kept only if its session was absent from Redis with nothing waiting in the outbox, and
the durable store still lists it after that was checked (a deletion synced in between
cannot bring a deleted session back). Both cost a walk over every session of the
durable store, and export reads the messages of the sessions only there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

from chatkeep.core.models import Message, Session
from chatkeep.core.query import Cursor, SessionFilter, SessionSort
from chatkeep.stores import ops
from chatkeep.stores.backend import Counts
from chatkeep.stores.surface import Operations, StoreSurface
from chatkeep.stores.tiered_listing import OnlyDurable, listed_upto

PAGE = 100
"""Sessions read from a store at a time."""

Row = tuple[Session, list[Message]]
ReadPage = Callable[[Cursor | None], Awaitable[list[Row]]]
_ORDER = SessionSort.parse("created_at")


async def _walk(read: ReadPage) -> AsyncIterator[list[Row]]:
    """The pages ``read`` gives, in creation order, until a short one."""
    mark: Cursor | None = None
    while True:
        rows = await read(mark)
        yield rows
        if len(rows) < PAGE:
            return
        last = rows[-1][0]
        mark = Cursor(_ORDER, last.created_at, last.id)


async def durable_only(
    cold: StoreSurface, only_durable: OnlyDurable, flt: SessionFilter | None, read: ReadPage
) -> AsyncIterator[Row]:
    """The rows ``read`` gives of the durable store's sessions that are only there."""
    mark: Cursor | None = None
    async for rows in _walk(read):
        flags = await only_durable([s.id for s, _ in rows])
        candidates = [row for row, flag in zip(rows, flags, strict=True) if flag]
        if candidates:
            cursor = None if mark is None else mark.encode()
            still = await listed_upto(cold, flt, _ORDER, PAGE, cursor, rows[-1][0])
            for row in candidates:
                if row[0].id in still:
                    yield row
        if rows:
            mark = Cursor(_ORDER, rows[-1][0].created_at, rows[-1][0].id)


def _key(session: Session) -> tuple[datetime, str]:
    return session.created_at, session.id


def exported(store: Operations, flt: SessionFilter | None) -> ReadPage:
    """A page of ``store``'s export: sessions matching ``flt`` with their messages."""

    async def read(mark: Cursor | None) -> list[Row]:
        rows: list[Row] = await store._call(ops.export_page, flt, mark, PAGE, write=False)
        return rows

    return read


def listed(store: StoreSurface, flt: SessionFilter) -> ReadPage:
    """A page of ``store``'s listing: sessions matching ``flt``, without messages."""

    async def read(mark: Cursor | None) -> list[Row]:
        cursor = None if mark is None else mark.encode()
        page = await store.list_sessions(flt, _ORDER, PAGE, cursor)
        return [(s, []) for s in page.sessions]

    return read


async def export_rows(
    hot: Operations, cold: StoreSurface, only_durable: OnlyDurable, flt: SessionFilter | None
) -> AsyncIterator[Row]:
    """Every session matching ``flt`` with its messages, in creation order: Redis's,
    merged with those only in the durable store (a session found in both during the
    walk is given once, from Redis)."""

    async def rows(pages: AsyncIterator[list[Row]]) -> AsyncIterator[Row]:
        async for page in pages:
            for row in page:
                yield row

    def key(row: Row) -> tuple[datetime, str]:
        return _key(row[0])

    hot_rows = rows(_walk(exported(hot, flt)))
    cold_rows = durable_only(cold, only_durable, flt, exported(cold, flt))
    left = await anext(hot_rows, None)  # checks the filter before the durable store is read
    right = await anext(cold_rows, None)
    while left is not None or right is not None:
        if right is None or (left is not None and key(left) <= key(right)):
            assert left is not None
            if right is not None and right[0].id == left[0].id:
                right = await anext(cold_rows, None)
            yield left
            left = await anext(hot_rows, None)
        else:
            yield right
            right = await anext(cold_rows, None)


async def counts(
    hot: Counts, cold: StoreSurface, only_durable: OnlyDurable, now: datetime
) -> Counts:
    """``hot`` (Redis's counts) with the sessions only in the durable store added."""
    total, expired, messages = hot.total_sessions, hot.expired_sessions, hot.total_messages
    owners = dict(hot.sessions_by_owner)
    everything = SessionFilter(include_expired=True)
    async for session, _ in durable_only(cold, only_durable, everything, listed(cold, everything)):
        total += 1
        expired += session.is_expired(now)
        messages += session.message_count
        if session.owner is not None:
            owners[session.owner] = owners.get(session.owner, 0) + 1
    return dataclasses.replace(
        hot,
        total_sessions=total,
        expired_sessions=expired,
        total_messages=messages,
        sessions_by_owner=owners,
    )
