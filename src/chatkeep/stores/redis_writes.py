"""The commands that write one session's changes inside a transaction's MULTI/EXEC.

Besides the session's own keys they keep the listing sets (global and per owner, one
per sort field) and the expiry set up to date, and set the native TTL of the session's
keys. That TTL is garbage collection only: whether a session has expired is decided
from its stored ``expires_at`` and the store's clock. The keys are kept for the time
the session had left when it was last written (``expires_at - updated_at``, never less
than what is really left) plus :data:`GC_GRACE`, measured on the Redis server's own
clock, so that a store on a clock of its own (a test's fake clock, a clock running
ahead) never loses a live session.
"""

from __future__ import annotations

from datetime import timedelta

from chatkeep.core.codec import to_micros
from chatkeep.core.models import Session
from chatkeep.stores.redis_keys import FIELDS, Keys
from chatkeep.stores.redis_link import Command
from chatkeep.stores.redis_overlay import Pending
from chatkeep.stores.redis_rows import encode_message, encode_session, score

GC_GRACE = timedelta(days=1)
"""How long an expired session's keys stay in Redis before Redis removes them itself."""

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


def session_writes(
    keys: Keys,
    session_id: str,
    stored: Session | None,
    current: Session | None,
    pending: Pending | None,
    idle_millis: int | None = None,
) -> list[Command]:
    """Commands turning ``stored`` (what Redis holds) into ``current`` (None: deleted);
    ``idle_millis`` caps the native TTL (see :func:`gc_millis`)."""
    record, messages, ids = keys.data(session_id)
    out: list[Command] = []
    if current is None:
        out.append(("DEL", record, messages, ids))
        out += _unindex(keys, session_id, stored)
        return out
    if pending is not None:
        out += _message_writes(messages, ids, pending)
    out.append(("SET", record, encode_session(current)))
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
    if expires_at is None:
        out.append(("ZREM", keys.expiry, session_id))
    else:
        out.append(("ZADD", keys.expiry, score(expires_at), session_id))
    millis = gc_millis(current, idle_millis)
    if millis is None:
        if stored is None or stored.expires_at is not None:
            out += [("PERSIST", key) for key in (record, messages, ids)]
    else:
        out += [("PEXPIRE", key, millis) for key in (record, messages, ids)]
    return out


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
