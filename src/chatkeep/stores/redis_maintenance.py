"""Self-check and clean-up of the Redis backend.

When Redis removes an expired session's keys by itself (native TTL, garbage collection)
the session's entries in the listing and expiry sets stay behind; reads skip them, and
:func:`prune` removes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from chatkeep.core.models import JSON, Session
from chatkeep.core.query import SortField
from chatkeep.errors import CorruptDataError
from chatkeep.stores.redis_keys import FIELDS, Keys
from chatkeep.stores.redis_link import Link
from chatkeep.stores.redis_rows import decode_session
from chatkeep.stores.redis_scan import walk

if TYPE_CHECKING:
    from chatkeep.stores.redis_txn import RedisTxn

_INFO = {"redis_version": "redis_version", "used_memory": "used_memory_bytes"}


async def check(txn: RedisTxn) -> tuple[list[str], dict[str, JSON]]:
    """Decode every record and compare it with its messages and id index."""
    link, keys = txn.link, txn.keys
    issues: list[str] = []
    sessions = messages = dangling = 0
    async for ids in walk(link, keys.by(SortField.CREATED_AT), None, None, False):
        raws = await txn.records([keys.session(i) for i in ids])
        present: list[Session] = []
        for sid, raw in zip(ids, raws, strict=True):
            if isinstance(raw, ResponseError):
                issues.append(str(link.error(raw, f"session {sid!r}")))
                continue
            if raw is None:
                dangling += 1
                continue
            try:
                present.append(decode_session(sid, raw))
            except CorruptDataError as exc:
                issues.append(str(exc))
        probes = [
            command
            for s in present
            for command in (
                ("ZCARD", keys.messages(s.id)),
                ("HLEN", keys.ids(s.id)),
                ("ZRANGE", keys.messages(s.id), -1, -1, "WITHSCORES"),
            )
        ]
        replies = await link.replies(*probes) if probes else []
        for i, session in enumerate(present):
            count, indexed, last = replies[3 * i : 3 * i + 3]
            found = _issues(session, count, indexed, last)
            issues += found
            if not found:
                sessions += 1
                messages += count
    details: dict[str, JSON] = {
        "prefix": keys.prefix,
        "sessions": sessions,
        "messages": messages,
        "dangling_index_entries": dangling,
        **await _info(link),
    }
    return issues, details


def _issues(session: Session, count: Any, indexed: Any, last: Any) -> list[str]:
    where = f"session {session.id!r}"
    if any(isinstance(reply, Exception) for reply in (count, indexed, last)):
        return [f"{where}: its messages or id index are not of the right Redis type"]
    found = []
    if count != session.message_count:
        found.append(f"{where}: message_count is {session.message_count} but {count} are stored")
    if indexed != count:
        found.append(f"{where}: the id index holds {indexed} entries for {count} messages")
    if last and int(float(last[1])) > session.last_seq:
        found.append(f"{where}: a message has a seq above last_seq {session.last_seq}")
    return found


async def _info(link: Link) -> dict[str, JSON]:
    server, memory = await link.run(("INFO", "server"), ("INFO", "memory"))
    out: dict[str, JSON] = {}
    for line in (server + memory).decode().splitlines():
        name, _, value = line.partition(":")
        if name in _INFO:
            out[_INFO[name]] = int(value) if value.isdigit() else value.strip()
    return out


async def prune(link: Link, keys: Keys) -> int:
    """Remove the listing and expiry entries of sessions whose record is gone; the count."""
    sets = [keys.expiry, *(keys.by(field) for field in FIELDS)]
    cursor = b"0"
    while True:
        cursor, found = (await link.run(("SCAN", cursor, "MATCH", keys.pattern("o"))))[0]
        sets += [key.decode() for key in found]
        if cursor == b"0":
            break
    removed = 0
    for key in sets:
        async for ids in walk(link, key, None, None, False):
            removed += await _prune_batch(link, keys, key, ids)
    return removed


async def _prune_batch(link: Link, keys: Keys, key: str, ids: list[str]) -> int:
    """Remove the members of ``ids`` without a record, unless one appears meanwhile."""
    records = [keys.session(i) for i in ids]
    _, *exists = await link.run(("WATCH", *records), *(("EXISTS", r) for r in records))
    gone = [i for i, there in zip(ids, exists, strict=True) if not there]
    if not gone:
        await link.run(("UNWATCH",))
        return 0
    *_, done = await link.run(("MULTI",), ("ZREM", key, *gone), ("EXEC",))
    return 0 if done is None else int(done[0])
