"""The session records a remote store last read or wrote, each with what identifies the
version it saw, so that a write can be checked against it on the server.

PostgreSQL keeps the row's ``xmin``, the transaction that wrote it: every change of a
session row, by this process or any other, makes a row with a new ``xmin``, and a row
whose transaction rolled back is never seen. A statement that names the version it
expects (``WHERE id = $1 AND xmin = $2``) therefore finds the row only if nothing has
changed it since. Redis keeps the record's exact bytes, which its write script compares.
Either way an entry is never trusted, only checked in the statement that depends on it.
"""

from __future__ import annotations

from typing import NamedTuple

from chatkeep.core.models import Message, Session


class Known(NamedTuple):
    """A session as one version of its row holds it."""

    version: int
    """PostgreSQL: the row's ``xmin``; Redis: the session's version."""
    row: tuple[object, ...]
    """What the check compares: PostgreSQL, the values of
    ``postgres_query.SESSION_COLUMNS``; Redis, the record's bytes and a message memo."""
    session: Session
    newest: tuple[Message, ...] | None = None
    """The session's newest messages in seq order (all of them if there are
    ``session.message_count``); ``None`` if not known."""

    def last(self, limit: int | None) -> list[Message] | None:
        """The newest ``limit`` messages (all if ``None``), if this entry holds them."""
        newest = self.newest
        if newest is None:
            return None
        held = len(newest)
        if limit is not None and limit <= held:
            return list(newest[held - limit :])
        if held == self.session.message_count:
            return list(newest)
        return None

    def with_newest(self, messages: tuple[Message, ...] | None, depth: int) -> Known:
        """This entry holding the newest ``messages`` (at most ``depth`` of them)."""
        if messages is not None:
            keep = min(len(messages), self.session.message_count, depth)
            messages = messages[len(messages) - keep :]
        return self._replace(newest=messages)


class SessionCache:
    """A bounded map of session id to :class:`Known`, each with up to ``depth`` newest
    messages; the least recently stored go first. A size of 0 keeps nothing."""

    def __init__(self, size: int, depth: int) -> None:
        if size < 0 or depth < 0:
            raise ValueError(f"expected sizes of 0 or more, got {size} and {depth}")
        self._size = size
        self.depth = depth
        self._entries: dict[str, Known] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session_id: str) -> Known | None:
        return self._entries.get(session_id)

    def put(self, known: Known) -> None:
        if not self._size:
            return
        entries = self._entries
        session_id = known.session.id
        entries.pop(session_id, None)
        if len(entries) >= self._size:
            del entries[next(iter(entries))]
        entries[session_id] = known

    def drop(self, session_id: str) -> None:
        self._entries.pop(session_id, None)
