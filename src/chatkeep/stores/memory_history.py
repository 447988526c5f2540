"""One session's messages in process memory, and private copies of records.

The copies are made field by field, without ``__init__``: records reach the backend
validated, and this is about three times faster than ``dataclasses.replace``.

A :class:`History` keeps the messages in ascending seq order with an index by id. Each
mutation returns the function that undoes it (or None when it changed nothing), costing
time in proportion to the change.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from itertools import pairwise

from chatkeep.core.frozen import FrozenDict, FrozenList, freeze, freeze_object
from chatkeep.core.models import Message, Session
from chatkeep.core.query import words

Undo = Callable[[], None]

SEARCH_MESSAGES_PER_HIT = 3


def _seq(message: Message) -> int:
    return message.seq


class History:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.by_id: dict[str, Message] = {}

    def __len__(self) -> int:
        return len(self.messages)

    def insert(self, session_id: str, messages: Sequence[Message]) -> Undo:
        """Add messages whose seqs are above every stored one and whose ids are new."""
        batch = [own_message(m) for m in messages]
        last = self.messages[-1].seq if self.messages else 0
        ids: set[str] = set()
        for message in batch:
            if message.session_id != session_id:
                raise RuntimeError(
                    f"expected a message of {session_id!r}, got {message.session_id!r}"
                )
            if message.seq <= last:
                raise RuntimeError(f"expected a seq above {last}, got {message.seq}")
            if message.id in self.by_id or message.id in ids:
                raise RuntimeError(f"expected a new message id, got {message.id!r} again")
            last = message.seq
            ids.add(message.id)
        start = len(self.messages)
        self.messages.extend(batch)
        self.by_id.update((m.id, m) for m in batch)

        def undo() -> None:
            del self.messages[start:]
            for message_id in ids:
                del self.by_id[message_id]

        return undo

    def drop_oldest(self, count: int) -> Undo | None:
        dropped = self.messages[:count]
        if not dropped:
            return None
        del self.messages[:count]
        for message in dropped:
            del self.by_id[message.id]

        def undo() -> None:
            self.messages[0:0] = dropped
            self.by_id.update((m.id, m) for m in dropped)

        return undo

    def delete(self, seq: int) -> Undo | None:
        at = bisect_left(self.messages, seq, key=_seq)
        if at == len(self.messages) or self.messages[at].seq != seq:
            return None
        message = self.messages.pop(at)
        del self.by_id[message.id]

        def undo() -> None:
            self.messages.insert(at, message)
            self.by_id[message.id] = message

        return undo

    def find(self, ids: Sequence[str]) -> dict[str, Message]:
        return {i: self.by_id[i] for i in ids if i in self.by_id}

    def read(
        self, after_seq: int | None, before_seq: int | None, limit: int | None, newest: bool
    ) -> list[Message]:
        messages = self.messages
        lo = 0 if after_seq is None else bisect_right(messages, after_seq, key=_seq)
        hi = len(messages) if before_seq is None else bisect_left(messages, before_seq, key=_seq)
        if limit is not None and hi - lo > limit:
            if newest:
                lo = hi - limit
            else:
                hi = lo + limit
        return messages[lo:hi]

    def matching(self, terms: set[str]) -> list[Message]:
        """The newest few messages whose words (content and metadata) include every term."""
        found: list[Message] = []
        for message in reversed(self.messages):
            if terms <= words(message.content) | words(message.metadata):
                found.append(message)
                if len(found) == SEARCH_MESSAGES_PER_HIT:
                    break
        return found

    def issues(self, session: Session) -> list[str]:
        """What is inconsistent between the session record and these messages."""
        where = f"session {session.id!r}"
        found: list[str] = []
        if len(self.messages) != session.message_count:
            found.append(
                f"{where}: message_count is {session.message_count} "
                f"but {len(self.messages)} messages are stored"
            )
        seqs = [m.seq for m in self.messages]
        if any(a >= b for a, b in pairwise(seqs)):
            found.append(f"{where}: message seqs are not strictly increasing")
        if seqs and seqs[-1] > session.last_seq:
            found.append(f"{where}: a message has seq {seqs[-1]} above last_seq {session.last_seq}")
        if any(m.session_id != session.id for m in self.messages):
            found.append(f"{where}: holds a message of another session")
        if self.by_id != {m.id: m for m in self.messages}:
            found.append(f"{where}: the message id index does not match the messages")
        return found


def own_session(session: Session) -> Session:
    """``session`` with read-only metadata, so that it can be shared without copies."""
    if type(session.metadata) is FrozenDict:
        return session
    return dataclasses.replace(session, metadata=freeze_object(session.metadata))


def own_message(message: Message) -> Message:
    """``message`` with read-only content and metadata, shareable without copies."""
    content = message.content
    if (isinstance(content, str) or type(content) in (FrozenDict, FrozenList)) and type(
        message.metadata
    ) is FrozenDict:
        return message
    return dataclasses.replace(
        message,
        content=freeze(content),  # type: ignore[arg-type]
        metadata=freeze_object(message.metadata),
    )
