"""Listing, search, expiry scans and counts on the Redis backend.

A listing walks the sorted set of its sort field (the owner's, when the filter names
one) in order, from the cursor, fetching the records of each batch of ids in one MGET
and keeping those that :func:`chatkeep.core.query.matches`; a range on the sort field
narrows the walk. Other conditions cost reading the records they reject.

Search has no index on plain Redis: it walks the candidate sessions (the owner's, or all)
most recently active first and reads every message of each until ``limit`` sessions
match, so it costs O(messages of the scanned sessions) and is meant for an owner's own
sessions.

Sessions that the transaction changed are left out of the walk and merged in from its
own records, so that a transaction reads its own writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING

from redis.exceptions import ResponseError

from chatkeep.core.models import Message, Session
from chatkeep.core.query import (
    Cursor,
    SearchHit,
    SessionFilter,
    SessionSort,
    SortField,
    matches,
    sort_value,
    words,
)
from chatkeep.stores.backend import Counts
from chatkeep.stores.memory_history import SEARCH_MESSAGES_PER_HIT
from chatkeep.stores.redis_link import Link
from chatkeep.stores.redis_rows import decode_messages, score

if TYPE_CHECKING:
    from chatkeep.stores.redis_txn import RedisTxn

BATCH = 200


async def walk(
    link: Link, key: str, low: int | None, high: int | None, descending: bool, size: int = BATCH
) -> AsyncIterator[list[str]]:
    """The members of sorted set ``key`` with low <= score <= high, in (score, member)
    order, in batches of ``size``."""
    offset = 0
    while True:
        low_arg = "-inf" if low is None else low
        high_arg = "+inf" if high is None else high
        command = (
            ("ZREVRANGEBYSCORE", key, high_arg, low_arg)
            if descending
            else ("ZRANGEBYSCORE", key, low_arg, high_arg)
        )
        (flat,) = await link.run((*command, "WITHSCORES", "LIMIT", offset, size))
        members = [m.decode() for m in flat[::2]]
        scores = [int(float(s)) for s in flat[1::2]]
        if members:
            yield members
        if len(members) < size:
            return
        last = scores[-1]
        ties = len(scores) - next(i for i, s in enumerate(scores) if s == last)
        bound = high if descending else low
        offset = ties + (offset if bound == last else 0)
        if descending:
            high = last
        else:
            low = last


def _bounds(
    flt: SessionFilter, sort: SessionSort, cursor: Cursor | None
) -> tuple[int | None, int | None]:
    """Score bounds (inclusive) that every session of the listing lies within."""
    after, before = {
        SortField.CREATED_AT: (flt.created_after, flt.created_before),
        SortField.LAST_ACTIVITY_AT: (flt.active_after, flt.active_before),
        SortField.UPDATED_AT: (None, None),
    }[sort.field]
    low = None if after is None else score(after)
    high = None if before is None else score(before)
    if cursor is not None:
        mark = score(cursor.value)
        if sort.descending:
            high = mark if high is None else min(high, mark)
        else:
            low = mark if low is None else max(low, mark)
    return low, high


def _ordered(sessions: list[Session], sort: SessionSort) -> list[Session]:
    return sorted(sessions, key=lambda s: (sort_value(s, sort), s.id), reverse=sort.descending)


async def query(
    txn: RedisTxn,
    flt: SessionFilter,
    sort: SessionSort,
    limit: int,
    cursor: Cursor | None,
    now: datetime,
) -> list[Session]:
    def wanted(s: Session | None) -> bool:
        return s is not None and matches(s, flt, now) and (cursor is None or cursor.admits(s))

    def kept(batch: list[Session | None]) -> list[Session]:
        return [s for s in batch if s is not None and wanted(s)]

    overlay = txn.overlay()
    key = txn.keys.listing(sort.field, flt.owner)
    low, high = _bounds(flt, sort, cursor)
    found: list[Session] = []
    async for ids in walk(txn.link, key, low, high, sort.descending, max(limit, BATCH)):
        found += kept(await txn.sessions([i for i in ids if i not in overlay]))
        if len(found) >= limit:
            break
    return _ordered(found + kept(list(overlay.values())), sort)[:limit]


async def expired(txn: RedisTxn, cutoff: datetime) -> list[str]:
    overlay = txn.overlay()
    (raw,) = await txn.link.run(("ZRANGEBYSCORE", txn.keys.expiry, "-inf", score(cutoff)))
    ids = [m.decode() for m in raw if m.decode() not in overlay]
    candidates = [*await txn.sessions(ids), *overlay.values()]
    return [
        s.id
        for s in candidates
        if s is not None and s.expires_at is not None and s.expires_at <= cutoff
    ]


def _hit(session: Session, messages: list[Message], terms: set[str]) -> SearchHit | None:
    found: list[Message] = []
    for message in reversed(messages):
        if terms <= words(message.content) | words(message.metadata):
            found.append(message)
            if len(found) == SEARCH_MESSAGES_PER_HIT:
                break
    if found or terms <= words(session.metadata):
        return SearchHit(session, found)
    return None


async def search(
    txn: RedisTxn,
    terms: set[str],
    owner: str | None,
    include_expired: bool,
    limit: int,
    now: datetime,
) -> list[SearchHit]:
    def eligible(s: Session | None) -> bool:
        return (
            s is not None
            and (owner is None or s.owner == owner)
            and (include_expired or not s.is_expired(now))
        )

    overlay = txn.overlay()
    key = txn.keys.listing(SortField.LAST_ACTIVITY_AT, owner)
    hits: list[SearchHit] = []
    async for ids in walk(txn.link, key, None, None, True, 50):
        batch = await txn.sessions([i for i in ids if i not in overlay])
        sessions = [s for s in batch if s is not None and eligible(s)]
        if not sessions:
            continue
        replies = await txn.link.replies(
            *(("ZRANGE", txn.keys.messages(s.id), 0, -1) for s in sessions)
        )
        for session, raws in zip(sessions, replies, strict=True):
            if isinstance(raws, ResponseError):
                raise txn.link.error(raws, f"session {session.id!r}") from raws
            hit = _hit(session, decode_messages(session.id, raws), terms)
            if hit is not None:
                hits.append(hit)
        if len(hits) >= limit:
            break
    for changed in overlay.values():
        if changed is not None and eligible(changed):
            messages = await txn.read_messages(
                changed.id, after_seq=None, before_seq=None, limit=None, newest=False
            )
            hit = _hit(changed, messages, terms)
            if hit is not None:
                hits.append(hit)
    hits.sort(key=lambda h: (h.session.last_activity_at, h.session.id), reverse=True)
    return hits[:limit]


async def all_sessions(txn: RedisTxn) -> AsyncIterator[list[Session]]:
    """Every session, in batches (those the transaction changed, as changed)."""
    overlay = txn.overlay()
    async for ids in walk(txn.link, txn.keys.by(SortField.CREATED_AT), None, None, False):
        batch = await txn.sessions([i for i in ids if i not in overlay])
        yield [s for s in batch if s is not None]
    yield [s for s in overlay.values() if s is not None]


async def counts(txn: RedisTxn, now: datetime) -> Counts:
    total = expired_count = messages = 0
    owners: dict[str, int] = {}
    async for batch in all_sessions(txn):
        for s in batch:
            total += 1
            expired_count += s.is_expired(now)
            messages += s.message_count
            if s.owner is not None:
                owners[s.owner] = owners.get(s.owner, 0) + 1
    return Counts(total, expired_count, messages, owners)
