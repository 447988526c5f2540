"""The commands that write one session's changes inside a transaction's MULTI/EXEC.

Besides the session's own keys they keep the listing sets (global and per owner, one
per sort field) and the expiry set up to date, and set the native TTL of the session's
keys. That TTL is garbage collection only: whether a session has expired is decided
from its stored ``expires_at`` and the store's clock. The keys are kept for the time
the session had left when it was last written (``expires_at - updated_at``, never less
than what is really left) plus :data:`GC_GRACE`, measured on the Redis server's own
clock, so that a store on a clock of its own (a test's fake clock, a clock running
ahead) never loses a live session.

The TTL is set (:func:`refreshes`) when a write creates the session, when it logs to
the write-behind outbox (whose acknowledgement caps the TTL to the idle one: a new
change must lift that cap), when an idle TTL applies (it must move on every write),
when the session's expiry is set or cleared, and when ``expires_at`` moves into
another bucket of :data:`GC_GRACE` / 2 (:func:`bucket`). Any other write keeps the TTL
the keys have (``SET ... KEEPTTL`` for the record), which is still long enough: by
induction, the last write that set it had an ``expires_at`` ``E0`` in the bucket of
the stored ``expires_at`` (each write since kept the bucket, or it would have set the
TTL), so the new ``expires_at`` ``E`` is less than ``E0 + GC_GRACE / 2``. That write,
at ``updated_at`` ``U0``, kept the keys until ``U0 + max(E0 - U0, 0) + GC_GRACE >=
E0 + GC_GRACE > E + GC_GRACE / 2``: they outlive the session by at least half the
grace. (Times on the store's clock, which runs at the server's pace.) A session's
message set and id index are created by the write that adds their first member, with
no TTL: when no stored message survives a write that adds some, the write sets their
TTL even when it keeps the record's (:func:`_starts_messages`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chatkeep.core.codec import to_micros
from chatkeep.core.models import Session
from chatkeep.stores.redis_keys import FIELDS, Keys
from chatkeep.stores.redis_link import Command
from chatkeep.stores.redis_overlay import Pending
from chatkeep.stores.redis_rows import encode_message, encode_session

GC_GRACE = timedelta(days=1)
"""How long an expired session's keys stay in Redis before Redis removes them itself
(at least half of it: see the module)."""

BUCKET_MICROS = GC_GRACE // 2 // timedelta(microseconds=1)
"""The width of a bucket of ``expires_at`` (see the module), in microseconds."""

_MS = timedelta(milliseconds=1)
_FIELD_NAMES = tuple((field, field.value) for field in FIELDS)
"""Each listing's field with the name of its Session attribute (scored by ``to_micros``,
which is :func:`~chatkeep.stores.redis_rows.score`)."""


def gc_millis(session: Session, idle_millis: int | None = None) -> int | None:
    """The native TTL of the session's keys, in milliseconds (None: kept forever).

    ``idle_millis`` caps it: with write-behind, the keys leave Redis after that long
    without a write, whatever the session's own expiry (the durable copy stays).
    """
    if session.expires_at is None:
        return idle_millis
    left = max(session.expires_at - session.updated_at, timedelta(0))
    millis = (left + GC_GRACE) // _MS
    return millis if idle_millis is None else min(millis, idle_millis)


def bucket(expires_at: datetime) -> int:
    """The bucket of :data:`GC_GRACE` / 2 that ``expires_at`` falls in."""
    return to_micros(expires_at) // BUCKET_MICROS


def refreshes(
    stored: Session | None, current: Session, idle_millis: int | None, logged: bool
) -> bool:
    """Whether writing ``current`` over ``stored`` must set the TTL of the session's
    keys, rather than keep the one they have (see the module)."""
    if stored is None or logged or idle_millis is not None:
        return True
    old, new = stored.expires_at, current.expires_at
    if old is None or new is None:
        return old is not new
    return bucket(old) != bucket(new)


def session_writes(
    keys: Keys,
    session_id: str,
    stored: Session | None,
    current: Session | None,
    pending: Pending | None,
    idle_millis: int | None = None,
    *,
    logged: bool = False,
) -> list[Command]:
    """Commands turning ``stored`` (what Redis holds) into ``current`` (None: deleted);
    ``idle_millis`` caps the native TTL (see :func:`gc_millis`); ``logged``: the write
    also goes to the write-behind outbox (see :func:`refreshes`)."""
    record, messages, ids = keys.data(session_id)
    out: list[Command] = []
    if current is None:
        out.append(("DEL", record, messages, ids))
        out += _unindex(keys, session_id, stored)
        return out
    if pending is not None:
        out += _message_writes(messages, ids, pending)
    data = encode_session(current)
    millis = gc_millis(current, idle_millis)
    if millis is None:  # kept forever
        out.append(("SET", record, data))  # (which drops the record's TTL)
        if stored is None or logged or stored.expires_at is not None:
            out += [("PERSIST", messages), ("PERSIST", ids)]
    elif refreshes(stored, current, idle_millis, logged):
        out += [
            ("SET", record, data, "PX", millis),
            ("PEXPIRE", messages, millis),
            ("PEXPIRE", ids, millis),
        ]
    else:
        out.append(("SET", record, data, "KEEPTTL"))
        if _starts_messages(stored, current, pending):
            out += [("PEXPIRE", messages, millis), ("PEXPIRE", ids, millis)]
    old_owner = None if stored is None else stored.owner
    owner = current.owner
    moved = old_owner != owner
    for field, name in _FIELD_NAMES:
        when = getattr(current, name)
        if moved:
            if old_owner is not None:
                out.append(("ZREM", keys.owned(field, old_owner), session_id))
        elif stored is not None and getattr(stored, name) == when:
            continue  # (aware times: equal exactly when their scores are)
        value = to_micros(when)
        out.append(("ZADD", keys.by(field), value, session_id))
        if owner is not None:
            out.append(("ZADD", keys.owned(field, owner), value, session_id))
    expires_at = current.expires_at
    if expires_at is not None:
        out.append(("ZADD", keys.expiry, to_micros(expires_at), session_id))
    elif stored is None or stored.expires_at is not None:
        out.append(("ZREM", keys.expiry, session_id))
    return out


def _starts_messages(stored: Session | None, current: Session, pending: Pending | None) -> bool:
    """Whether the write may create the message set and id index: it adds messages and
    no stored message survives it (a set or hash emptied is deleted)."""
    if pending is None or not pending.added:
        return False
    return (
        stored is None
        or stored.message_count == 0
        or pending.wiped
        or current.message_count <= len(pending.added)
    )


def _message_writes(messages: str, ids: str, pending: Pending) -> list[Command]:
    out: list[Command] = []
    if pending.wiped:
        out.append(("DEL", messages, ids))
    else:
        if pending.floor:
            out.append(("ZREMRANGEBYSCORE", messages, "-inf", pending.floor))
        out += [("ZREMRANGEBYSCORE", messages, seq, seq) for seq in sorted(pending.gone)]
        if pending.gone_ids:
            out.append(("HDEL", ids, *sorted(pending.gone_ids)))
    if pending.added:
        members: list[str | bytes | int] = ["ZADD", messages]
        index: list[str | bytes | int] = ["HSET", ids]
        for message in pending.added:
            members += [message.seq, encode_message(message)]
            index += [message.id, message.seq]
        out += [members, index]
    return out


def _unindex(keys: Keys, session_id: str, stored: Session | None) -> list[Command]:
    out: list[Command] = [("ZREM", keys.expiry, session_id)]
    for field in FIELDS:
        out.append(("ZREM", keys.by(field), session_id))
        if stored is not None and stored.owner is not None:
            out.append(("ZREM", keys.owned(field, stored.owner), session_id))
    return out
