"""Listing and searching a Redis store written behind: the sessions in Redis and those
only in the durable store, as one page (or one list of hits).

Both stores list the same filter, sort and cursor (a cursor is a position in the sort
order, valid in any store). The durable store's rows of sessions that are in Redis (or
deleted there, the deletion not yet synced) are left out: Redis has their newest copy.
Durable rows are read page after page until the page is full or they rank after the
last row Redis gave (when Redis has more: later rows cannot make the page).

A durable row is kept only if its session was absent from Redis with nothing waiting in
the outbox, and the durable store still lists it after that was checked: a deletion
synced in between cannot bring a deleted session back into a listing (the check reads
on past rows added meanwhile, so that they do not hide the rows read before).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from chatkeep.core.models import Session
from chatkeep.core.query import (
    MAX_PAGE,
    Cursor,
    SearchHit,
    SessionFilter,
    SessionPage,
    SessionSort,
    check_sort,
    sort_value,
)
from chatkeep.errors import SessionExpiredError, SessionNotFoundError
from chatkeep.stores.surface import Operations, StoreSurface

OnlyDurable = Callable[[Sequence[str]], Awaitable[list[bool]]]
"""For each session id: True if the session is only in the durable store."""


async def merged_page(
    hot: Operations,
    cold: StoreSurface,
    only_durable: OnlyDurable,
    flt: SessionFilter | None,
    sort: SessionSort | str | None,
    limit: int,
    cursor: str | None,
) -> SessionPage:
    first = await hot.list_sessions(flt, sort, limit, cursor)  # checks every argument
    order = check_sort(sort)
    desc = order.descending

    def key(session: Session) -> tuple[datetime, str]:
        return sort_value(session, order), session.id

    last = key(first.sessions[-1]) if first.next_cursor is not None else None
    found: list[Session] = []
    more, mark = False, cursor
    while True:
        page = await cold.list_sessions(flt, sort, limit, mark)
        rows = [
            s for s in page.sessions if last is None or (key(s) >= last if desc else key(s) <= last)
        ]
        found += await _absent(cold, only_durable, rows, flt, sort, limit, mark)
        if page.next_cursor is None or len(rows) < len(page.sessions):
            break
        if len(found) >= limit:
            more = True
            break
        mark = page.next_cursor
    hot_ids = {s.id for s in first.sessions}
    rows = [s for s in found if s.id not in hot_ids] + list(first.sessions)
    rows.sort(key=key, reverse=desc)
    more = more or first.next_cursor is not None or len(rows) > limit
    rows = rows[:limit]
    if not more or not rows:
        return SessionPage(rows, None)
    end = rows[-1]
    return SessionPage(rows, Cursor(order, sort_value(end, order), end.id).encode())


async def _absent(
    cold: StoreSurface,
    only_durable: OnlyDurable,
    rows: list[Session],
    flt: SessionFilter | None,
    sort: SessionSort | str | None,
    limit: int,
    mark: str | None,
) -> list[Session]:
    """The rows of sessions only in the durable store (see the module's docstring)."""
    flags = await only_durable([s.id for s in rows])
    candidates = [s for s, flag in zip(rows, flags, strict=True) if flag]
    if not candidates:
        return []
    still = await listed_upto(cold, flt, sort, limit, mark, rows[-1])
    return [s for s in candidates if s.id in still]


async def listed_upto(
    cold: StoreSurface,
    flt: SessionFilter | None,
    sort: SessionSort | str | None,
    limit: int,
    mark: str | None,
    last: Session,
) -> set[str]:
    """The ids the durable store lists now after the cursor ``mark``, up to ``last``
    included: in more than one page if sessions were added there meanwhile."""
    order = check_sort(sort)

    def key(session: Session) -> tuple[datetime, str]:
        return sort_value(session, order), session.id

    found: set[str] = set()
    while True:
        page = await cold.list_sessions(flt, sort, limit, mark)
        found.update(s.id for s in page.sessions)
        if page.next_cursor is None or not page.sessions:
            return found
        end = key(page.sessions[-1])
        if (end <= key(last)) if order.descending else (end >= key(last)):
            return found
        mark = page.next_cursor


async def merged_search(
    hot: Operations,
    cold: StoreSurface,
    only_durable: OnlyDurable,
    query: str,
    owner: str | None,
    limit: int,
    include_expired: bool,
) -> list[SearchHit]:
    """Search both stores, most recently active first: the durable store's hits of
    sessions only in it, asked for more (up to :data:`MAX_PAGE`) while Redis's copies
    crowd them out; each kept hit confirmed in the durable store after the check."""
    hits = await hot.search_sessions(
        query, owner=owner, limit=limit, include_expired=include_expired
    )  # checks every argument
    asked, kept = limit, []
    while True:
        found = await cold.search_sessions(
            query, owner=owner, limit=asked, include_expired=include_expired
        )
        flags = await only_durable([h.session.id for h in found])
        kept = [h for h, flag in zip(found, flags, strict=True) if flag]
        if len(kept) >= limit or len(found) < asked or asked >= MAX_PAGE:
            break
        asked = min(MAX_PAGE, asked * 2)
    held = {h.session.id for h in hits}
    for hit in kept[:limit]:
        if hit.session.id not in held and await _still_there(cold, hit.session.id):
            hits.append(hit)
    hits.sort(key=lambda h: (h.session.last_activity_at, h.session.id), reverse=True)
    return hits[:limit]


async def _still_there(cold: StoreSurface, session_id: str) -> bool:
    try:
        await cold.get_session(session_id)
    except SessionNotFoundError:
        return False
    except SessionExpiredError:
        return True
    return True
