"""A transaction's not-yet-committed changes to one session's messages.

Writes wait in a :class:`Pending` until EXEC; reads merge it with what Redis holds, so
a transaction reads its own writes. The changes have a simple shape because new
messages always get seqs above every stored one: stored messages are removed in a
block from the oldest (``floor``), one by one (``gone``), or all at once (``wiped``);
``added`` holds the new ones in seq order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatkeep.core.models import Message


@dataclass(slots=True)
class Pending:
    wiped: bool = False
    """Every stored message (and the id index) is deleted at commit."""
    floor: int = 0
    """Stored messages with seq <= floor are deleted at commit."""
    gone: set[int] = field(default_factory=set)
    """Seqs (above ``floor``) of stored messages deleted one by one."""
    gone_ids: set[str] = field(default_factory=set)
    """Ids of the deleted stored messages, for the id index."""
    added: list[Message] = field(default_factory=list)

    def hides(self, seq: int) -> bool:
        """True if the stored message ``seq`` is deleted in this transaction."""
        return self.wiped or seq <= self.floor or seq in self.gone

    def stored_after(self, after_seq: int | None) -> int | None:
        """The lower bound (exclusive) for reading stored messages still visible."""
        if self.floor == 0:
            return after_seq
        return self.floor if after_seq is None else max(after_seq, self.floor)

    def added_between(self, after_seq: int | None, before_seq: int | None) -> list[Message]:
        return [
            m
            for m in self.added
            if (after_seq is None or m.seq > after_seq)
            and (before_seq is None or m.seq < before_seq)
        ]

    def remove(self, message: Message) -> None:
        """Delete ``message`` (a visible one, stored or added)."""
        if self.added and message.seq >= self.added[0].seq:
            self.added = [m for m in self.added if m.seq != message.seq]
            return
        self.gone.add(message.seq)
        self.gone_ids.add(message.id)

    def drop_stored_upto(self, messages: list[Message]) -> None:
        """Delete the oldest visible messages ``messages`` (ascending seq)."""
        for message in messages:
            if self.added and message.seq >= self.added[0].seq:
                self.added = self.added[1:]
            else:
                self.floor = max(self.floor, message.seq)
                self.gone_ids.add(message.id)
        self.gone = {seq for seq in self.gone if seq > self.floor}

    def clear(self) -> None:
        self.wiped = True
        self.floor = 0
        self.gone.clear()
        self.gone_ids.clear()
        self.added.clear()


def merge(
    stored: list[Message],
    added: list[Message],
    limit: int | None,
    newest: bool,
) -> list[Message]:
    """Stored then added messages (all stored seqs are lower), cut to ``limit``."""
    combined = stored + added
    if limit is None or len(combined) <= limit:
        return combined
    return combined[-limit:] if newest else combined[:limit]
