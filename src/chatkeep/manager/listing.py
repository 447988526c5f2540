"""Listing and search over several stores, merged as if they were one.

Every store sorts the same way (the sort field, then the id, in one direction) and
understands the same keyset cursor, so one cursor, the position of the last session
returned, serves every store: each store is asked for a page after it, and the pages
are merged. Ids are unique across stores, so no session appears twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from chatkeep.core.models import Session
from chatkeep.core.query import (
    Cursor,
    SearchHit,
    SessionFilter,
    SessionPage,
    SessionSort,
    check_limit,
    check_sort,
    sort_value,
)
from chatkeep.stores.base import Store


async def list_across(
    stores: Sequence[Store],
    flt: SessionFilter | None,
    sort: SessionSort | str | None,
    limit: int,
    cursor: str | None,
) -> SessionPage:
    """One page of the sessions of every store, in one order, with one cursor."""
    if len(stores) == 1:
        return await stores[0].list_sessions(flt, sort, limit, cursor)
    order = check_sort(sort)
    limit = check_limit(limit)
    if cursor is not None:
        Cursor.decode(cursor, order)
    pages = await asyncio.gather(
        *(store.list_sessions(flt, order, limit, cursor) for store in stores)
    )
    merged = sorted(
        (session for page in pages for session in page.sessions),
        key=lambda s: (sort_value(s, order), s.id),
        reverse=order.descending,
    )
    more = len(merged) > limit or any(page.next_cursor is not None for page in pages)
    kept = merged[:limit]
    if not more or not kept:
        return SessionPage(kept, None)
    return SessionPage(kept, _cursor_after(kept[-1], order))


def _cursor_after(session: Session, order: SessionSort) -> str:
    return Cursor(order, sort_value(session, order), session.id).encode()


async def search_across(
    stores: Sequence[Store],
    query: str,
    *,
    owner: str | None,
    limit: int,
    include_expired: bool,
) -> list[SearchHit]:
    """The best ``limit`` hits of every store, most recently active first."""
    results = await asyncio.gather(
        *(
            store.search_sessions(query, owner=owner, limit=limit, include_expired=include_expired)
            for store in stores
        )
    )
    if len(results) == 1:
        return results[0]
    hits = [hit for found in results for hit in found]
    hits.sort(key=lambda h: (h.session.last_activity_at, h.session.id), reverse=True)
    return hits[:limit]
