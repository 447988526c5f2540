"""Changes of the write-behind outbox: what one write did to one session, as a value.

A :class:`Change` is recorded in the same atomic step as the write it describes (see
:mod:`chatkeep.stores.redis_outbox`) and later applied to the durable copy of the
session by :func:`chatkeep.stores.ops.apply_change`. Delivery is at least once and,
across several sync workers, not always in order, so whether a change applies is decided
from the durable copy's ``(created_at, version)`` (:func:`verdict`): a change applies
exactly on top of the version it was made from, is skipped when the durable copy has it
already, and waits while an earlier change of the same session is still on its way.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from chatkeep.core.codec import (
    dumpb,
    from_micros,
    message_from_dict,
    message_to_dict,
    session_from_dict,
    session_to_dict,
    to_micros,
)
from chatkeep.core.models import JSON, JSONObject, Message, Session
from chatkeep.errors import CorruptDataError

FORMAT = 1
"""The version of the encoded form of a change."""


class Verdict(enum.StrEnum):
    APPLY = "apply"
    SKIP = "skip"
    """The durable copy has the change already (or a later life of the session)."""
    WAIT = "wait"
    """An earlier change of the session has not reached the durable copy yet."""


@dataclass(frozen=True, slots=True)
class Change:
    """One write's effect on one session.

    ``base`` is the ``(created_at, version)`` of the record the write started from;
    ``None`` when the write created the session (or replaced it whole): the change then
    holds the whole session. ``session`` is the record after the write (``None``: the
    session was deleted). Removals are those of the rolling window and of pop/clear:
    every message (``wiped``), those up to seq ``floor``, and the seqs in ``gone``.
    """

    session_id: str
    session: Session | None
    base: tuple[datetime, int] | None
    added: tuple[Message, ...] = ()
    wiped: bool = False
    floor: int = 0
    gone: tuple[int, ...] = ()

    @property
    def whole(self) -> bool:
        return self.base is None

    def encode(self) -> bytes:
        data: JSONObject = {
            "f": FORMAT,
            "s": None if self.session is None else session_to_dict(self.session),
            "b": None if self.base is None else [to_micros(self.base[0]), self.base[1]],
            "a": [message_to_dict(m) for m in self.added],
            "w": self.wiped,
            "l": self.floor,
            "g": list[JSON](self.gone),
        }
        return dumpb(data)

    @classmethod
    def decode(cls, session_id: str, raw: bytes) -> Change:
        """The change encoded in ``raw``; CorruptDataError if it is not one."""
        where = f"an outbox entry of session {session_id!r}"
        try:
            data = json.loads(raw)
            if data["f"] != FORMAT:
                raise ValueError(f"format {data['f']!r}")
            session = None if data["s"] is None else session_from_dict(data["s"], where)
            base = None if data["b"] is None else (from_micros(data["b"][0]), int(data["b"][1]))
            added = tuple(message_from_dict(m, session_id, where) for m in data["a"])
            floor, gone = int(data["l"]), tuple(int(seq) for seq in data["g"])
            wiped = data["w"]
        except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
            raise CorruptDataError(where, f"not a change ({exc})") from None
        if session is not None and session.id != session_id:
            raise CorruptDataError(where, f"the entry holds session {session.id!r}")
        if (session is None and base is None) or not isinstance(wiped, bool):
            raise CorruptDataError(where, "not a change (no record and no base)")
        return cls(session_id, session, base, added, wiped, floor, gone)


def change_of(
    session_id: str,
    stored: Session | None,
    current: Session | None,
    *,
    whole: bool,
    added: Sequence[Message] = (),
    wiped: bool = False,
    floor: int = 0,
    gone: Sequence[int] = (),
) -> Change | None:
    """The change from ``stored`` to ``current`` (None: nothing to record).

    ``whole``: the write created or replaced the session, so the change carries all of it.
    """
    if current is None:
        if stored is None:
            return None
        return Change(session_id, None, (stored.created_at, stored.version))
    if whole or stored is None:
        return Change(session_id, current, None, tuple(added))
    base = (stored.created_at, stored.version)
    return Change(session_id, current, base, tuple(added), wiped, floor, tuple(sorted(gone)))


def verdict(durable: Session | None, change: Change) -> Verdict:
    """Whether ``change`` applies to ``durable`` (the durable copy, None: absent)."""
    if change.base is None:
        new = change.session
        assert new is not None
        if durable is not None and (durable.created_at, durable.version) >= (
            new.created_at,
            new.version,
        ):
            return Verdict.SKIP
        return Verdict.APPLY
    created, version = change.base
    if durable is None:
        return Verdict.SKIP if change.session is None else Verdict.WAIT
    if durable.created_at != created:
        return Verdict.SKIP if durable.created_at > created else Verdict.WAIT
    if durable.version == version:
        return Verdict.APPLY
    return Verdict.SKIP if durable.version > version else Verdict.WAIT


def merged(first: Change, then: Change) -> Change | None:
    """One change doing what ``first`` then ``then`` do (same session, ``then`` made
    right on top of ``first``); None when they cannot be merged."""
    before = first.session
    if before is None or then.session is None or then.base != (before.created_at, before.version):
        return None
    if then.wiped:
        kept: list[Message] = []
    else:
        kept = [m for m in first.added if m.seq > then.floor and m.seq not in then.gone]
    added = (*kept, *then.added)
    if first.whole:
        return Change(first.session_id, then.session, None, added)
    if then.wiped:
        return Change(first.session_id, then.session, first.base, added, wiped=True)
    new_seqs = {m.seq for m in first.added}
    return Change(
        first.session_id,
        then.session,
        first.base,
        added,
        first.wiped,
        max(first.floor, then.floor),
        tuple(sorted((set(first.gone) | set(then.gone)) - new_seqs)),
    )


def coalesce(changes: Sequence[Change]) -> list[tuple[Change, list[int]]]:
    """The changes with each session's successive ones merged (see :func:`merged`):
    each with the positions in ``changes`` of those it stands for. The order of each
    session's changes is kept; that of different sessions need not be."""
    out: list[tuple[Change, list[int]]] = []
    last: dict[str, int] = {}
    for position, change in enumerate(changes):
        at = last.get(change.session_id)
        combined = None if at is None else merged(out[at][0], change)
        if at is not None and combined is not None:
            out[at] = (combined, [*out[at][1], position])
        else:
            last[change.session_id] = len(out)
            out.append((change, [position]))
    return out
