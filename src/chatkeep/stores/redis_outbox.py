"""The write-behind outbox in Redis: a stream of changes, read by a consumer group.

A write transaction appends one entry per changed session to ``<prefix>:outbox`` inside
its own MULTI/EXEC (:func:`record`), and counts it in ``<prefix>:outbox:waiting``
(session id -> changes not yet in the durable store). Its keys keep the session's own
native TTL meanwhile: a session never leaves Redis with changes still to sync. The idle
TTL starts when its last change is acknowledged. Sync workers read entries with
XREADGROUP (group :data:`GROUP`), take over those of a consumer that stopped answering
with XAUTOCLAIM, and acknowledge an entry only once the durable store has committed it:
:func:`ack` acknowledges, deletes it from the stream and counts it down, in one step, so
the stream's length is the number of changes not yet synced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.exceptions import ResponseError

from chatkeep.stores.outbox import Change
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.redis_link import Command, Link

GROUP = "sync"
NEW = b">"
"""Read entries never delivered to any consumer."""

# Acknowledge only entries still pending, so that an entry two workers both processed
# (after one took it over from the other) is counted down once; when a session has no
# change left to sync, start its idle TTL (cap the TTL of its keys, named as in
# redis_keys), unless a writer holds the session's lock: changing a key it watches would
# fail its transaction, and its own change caps the TTL when that change is synced. A
# transaction cannot make these depend on XACK's reply; a script can.
_ACK = """
local idle, done = tonumber(ARGV[2]), 0
for i = 4, #ARGV, 2 do
  local sid = ARGV[i + 1]
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    if sid ~= '' and redis.call('HINCRBY', KEYS[2], sid, -1) <= 0 then
      redis.call('HDEL', KEYS[2], sid)
      if idle > 0 and redis.call('EXISTS', ARGV[3] .. ':w:' .. sid) == 0 then
        for _, kind in ipairs({'s', 'm', 'i'}) do
          local key = ARGV[3] .. ':' .. kind .. ':' .. sid
          local left = redis.call('PTTL', key)
          if left == -1 or left > idle then redis.call('PEXPIRE', key, idle) end
        end
      end
    end
    done = done + 1
  end
end
return done
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry as read: its stream id, and its session and change (None when the
    entry was deleted from the stream while pending)."""

    id: bytes
    session_id: str | None
    raw: bytes | None


def record(keys: Keys, change: Change) -> list[Command]:
    """The commands, for a MULTI/EXEC, that put ``change`` in the outbox."""
    sid = change.session_id
    return [
        ("XADD", keys.outbox, "*", "s", sid, "c", change.encode()),
        ("HINCRBY", keys.waiting, sid, 1),
    ]


async def ensure_group(link: Link, keys: Keys) -> None:
    """Create the stream and its consumer group unless they exist."""
    (reply,) = await link.replies(("XGROUP", "CREATE", keys.outbox, GROUP, "0", "MKSTREAM"))
    if isinstance(reply, ResponseError) and not str(reply).startswith("BUSYGROUP"):
        raise link.error(reply, None) from reply


async def claim(link: Link, keys: Keys, consumer: str, min_idle_ms: int, count: int) -> int:
    """Take over entries pending for ``min_idle_ms`` or more with another consumer; how many."""
    taken, cursor = 0, b"0-0"
    while True:
        command = ("XAUTOCLAIM", keys.outbox, GROUP, consumer, min_idle_ms, cursor)
        ((cursor, ids, *_),) = await link.run((*command, "COUNT", count, "JUSTID"))
        taken += len(ids)
        if cursor == b"0-0" or not ids:
            return taken


async def read(link: Link, keys: Keys, consumer: str, after: bytes, count: int) -> list[Entry]:
    """Up to ``count`` entries: never delivered (``after`` = :data:`NEW`), or pending with
    this consumer with ids above ``after`` (``b"0"``: from the first)."""
    command = ("XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count)
    (reply,) = await link.run((*command, "STREAMS", keys.outbox, after))
    if not reply:
        return []
    ((_, rows),) = reply
    return [_entry(entry_id, fields) for entry_id, fields in rows]


def _entry(entry_id: bytes, fields: Sequence[bytes] | None) -> Entry:
    if not fields:
        return Entry(entry_id, None, None)
    pairs = dict(zip(fields[::2], fields[1::2], strict=True))
    sid = pairs.get(b"s")
    return Entry(entry_id, None if sid is None else sid.decode(errors="replace"), pairs.get(b"c"))


async def ack(
    link: Link, keys: Keys, entries: Sequence[Entry], idle_millis: int | None = None
) -> int:
    """Acknowledge and delete ``entries`` (those still pending); how many were.

    A session left with no change to sync keeps its keys in Redis for at most
    ``idle_millis`` more (None: as long as the session lives)."""
    if not entries:
        return 0
    args: list[str | bytes | int] = [GROUP, idle_millis or 0, keys.prefix]
    for entry in entries:
        args += [entry.id, entry.session_id or ""]
    (done,) = await link.run(("EVAL", _ACK, 2, keys.outbox, keys.waiting, *args))
    return int(done)


async def bury(
    link: Link, keys: Keys, entry: Entry, reason: str, idle_millis: int | None = None
) -> None:
    """Move ``entry`` (one the durable store cannot take) to ``<prefix>:outbox:dead``."""
    fields: list[str | bytes] = ["s", entry.session_id or "", "c", entry.raw or b"", "why", reason]
    await link.run(("XADD", keys.dead, "*", *fields))
    await ack(link, keys, [entry], idle_millis)


async def waiting(link: Link, keys: Keys, session_id: str) -> int:
    """How many changes of the session are in the outbox, not yet in the durable store."""
    (raw,) = await link.run(("HGET", keys.waiting, session_id), about=f"session {session_id!r}")
    return 0 if raw is None else int(raw)


@dataclass(frozen=True, slots=True)
class Lag:
    length: int
    """Changes in the outbox, not yet in the durable store."""
    oldest_age: float
    """Seconds since the oldest of them was written (0 when there is none)."""
    dead: int
    """Changes the durable store refused (kept in ``<prefix>:outbox:dead``)."""


async def lag(link: Link, keys: Keys) -> Lag:
    length, first, dead, (secs, micros) = await link.run(
        ("XLEN", keys.outbox),
        ("XRANGE", keys.outbox, "-", "+", "COUNT", 1),
        ("XLEN", keys.dead),
        ("TIME",),
    )
    if not first:
        return Lag(int(length), 0.0, int(dead))
    now_ms = int(secs) * 1000 + int(micros) // 1000
    written_ms = int(first[0][0].split(b"-")[0])
    return Lag(int(length), max(now_ms - written_ms, 0) / 1000, int(dead))


async def forget_consumers(link: Link, keys: Keys, idle_ms: int, keep: str) -> int:
    """Remove from the group the consumers (workers of processes long gone) that have
    nothing pending and have been idle for ``idle_ms``; how many were removed."""
    (rows,) = await link.run(("XINFO", "CONSUMERS", keys.outbox, GROUP))
    gone: list[bytes] = []
    for row in rows:
        info = dict(zip(row[::2], row[1::2], strict=True))
        name = info[b"name"]
        if name != keep.encode() and int(info[b"pending"]) == 0 and int(info[b"idle"]) >= idle_ms:
            gone.append(name)
    for name in gone:
        await link.run(("XGROUP", "DELCONSUMER", keys.outbox, GROUP, name))
    return len(gone)
