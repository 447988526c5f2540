"""The in-process backend: plain dicts, and an undo log for transactions.

Every mutation records how to undo itself, in time proportional to the change
(never a copy of the store), so ``rollback`` restores exactly the state at ``begin``.
Records are copied on the way in and out, so no caller shares a mutable value (metadata,
JSON content) with the store. The filesystem backend keeps its working state in one of these.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime

from chatkeep.core.models import JSON, Message, Session
from chatkeep.core.query import Cursor, SearchHit, SessionFilter, SessionSort, matches, sort_value
from chatkeep.core.query import words as words_of
from chatkeep.errors import SessionExistsError, SessionNotFoundError
from chatkeep.stores.backend import Backend, Counts
from chatkeep.stores.memory_history import History, Undo, own_session


class MemoryBackend(Backend):
    """Sessions and messages in process memory; gone when the process ends."""

    name = "memory"

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._histories: dict[str, History] = {}
        self._undo: list[Undo] | None = None
        self._write = False

    # -- transactions -------------------------------------------------------
    def begin(self, write: bool) -> None:
        if self._undo is not None:
            raise RuntimeError("expected no open transaction, got one")
        self._undo = []
        self._write = write

    def commit(self) -> None:
        if self._undo is None:
            raise RuntimeError("expected an open transaction, got none")
        self._undo = None

    def rollback(self) -> None:
        """Undo every write since ``begin``; does nothing when no transaction is open."""
        undo, self._undo = self._undo, None
        while undo:
            undo.pop()()

    def close(self) -> None:
        self.rollback()
        self._sessions.clear()
        self._histories.clear()

    def _log(self) -> list[Undo]:
        """The undo log of the open write transaction."""
        if self._undo is None or not self._write:
            raise RuntimeError("expected an open write transaction, got none")
        return self._undo

    def _history(self, session_id: str) -> History:
        history = self._histories.get(session_id)
        if history is None:
            raise SessionNotFoundError(session_id)
        return history

    # -- sessions -----------------------------------------------------------
    def get_session(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def put_session(self, session: Session, *, new: bool) -> None:
        log = self._log()
        session = own_session(session)
        sid = session.id
        old = self._sessions.get(sid)
        if new:
            if old is not None:
                raise SessionExistsError(sid)
            self._sessions[sid] = session
            self._histories[sid] = History()
            log.append(lambda: self._forget(sid))
            return
        if old is None:
            raise SessionNotFoundError(sid)
        self._sessions[sid] = session
        log.append(lambda: self._sessions.__setitem__(sid, old))

    def _forget(self, session_id: str) -> None:
        del self._sessions[session_id]
        del self._histories[session_id]

    def delete_session(self, session_id: str) -> None:
        log = self._log()
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        history = self._histories.pop(session_id)

        def undo() -> None:
            self._sessions[session_id] = session
            self._histories[session_id] = history

        log.append(undo)

    def query_sessions(
        self,
        flt: SessionFilter,
        sort: SessionSort,
        limit: int,
        cursor: Cursor | None,
        now: datetime,
    ) -> list[Session]:
        chosen = (
            s
            for s in self._sessions.values()
            if matches(s, flt, now) and (cursor is None or cursor.admits(s))
        )

        def key(s: Session) -> tuple[datetime, str]:
            return sort_value(s, sort), s.id

        pick = heapq.nlargest if sort.descending else heapq.nsmallest
        return pick(limit, chosen, key=key)

    def expired_ids(self, cutoff: datetime) -> list[str]:
        return [
            s.id
            for s in self._sessions.values()
            if s.expires_at is not None and s.expires_at <= cutoff
        ]

    def search(
        self,
        terms: Sequence[str],
        owner: str | None,
        include_expired: bool,
        limit: int,
        now: datetime,
    ) -> list[SearchHit]:
        wanted = set(terms)
        eligible = [
            s
            for s in self._sessions.values()
            if (owner is None or s.owner == owner) and (include_expired or not s.is_expired(now))
        ]
        eligible.sort(key=lambda s: (s.last_activity_at, s.id), reverse=True)
        hits: list[SearchHit] = []
        for session in eligible:
            found = self._histories[session.id].matching(wanted)
            if found or wanted <= words_of(session.metadata):
                hits.append(SearchHit(session, found))
                if len(hits) >= limit:
                    break
        return hits

    # -- messages -----------------------------------------------------------
    def find_messages(self, session_id: str, ids: Sequence[str]) -> dict[str, Message]:
        return self._history(session_id).find(ids)

    def insert_messages(self, session_id: str, messages: Sequence[Message]) -> None:
        log = self._log()
        log.append(self._history(session_id).insert(session_id, messages))

    def drop_oldest(self, session_id: str, count: int) -> None:
        log = self._log()
        undo = self._history(session_id).drop_oldest(count)
        if undo is not None:
            log.append(undo)

    def read_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        newest: bool,
    ) -> list[Message]:
        return self._history(session_id).read(after_seq, before_seq, limit, newest)

    def iter_messages(self, session_id: str) -> Iterator[Message]:
        """Every message of the session in seq order: the stored records, not to be changed."""
        return iter(self._history(session_id).messages)

    def delete_message(self, session_id: str, seq: int) -> None:
        log = self._log()
        undo = self._history(session_id).delete(seq)
        if undo is not None:
            log.append(undo)

    def clear_messages(self, session_id: str) -> None:
        log = self._log()
        old = self._history(session_id)
        if not old.messages:
            return
        self._histories[session_id] = History()
        log.append(lambda: self._histories.__setitem__(session_id, old))

    # -- maintenance --------------------------------------------------------
    def counts(self, now: datetime) -> Counts:
        sessions = self._sessions.values()
        return Counts(
            total_sessions=len(self._sessions),
            expired_sessions=sum(1 for s in sessions if s.is_expired(now)),
            total_messages=sum(len(h) for h in self._histories.values()),
            sessions_by_owner=dict(Counter(s.owner for s in sessions if s.owner is not None)),
        )

    def optimize(self) -> list[str]:
        return ["nothing to optimise in memory"]

    def check(self) -> tuple[list[str], dict[str, JSON]]:
        issues: list[str] = []
        for sid, session in self._sessions.items():
            history = self._histories.get(sid)
            if history is None:
                issues.append(f"session {sid!r}: no message list")
            else:
                issues.extend(history.issues(session))
        details: dict[str, JSON] = {
            "sessions": len(self._sessions),
            "messages": sum(len(h) for h in self._histories.values()),
        }
        return issues, details

    def contents(self) -> dict[str, tuple[Session, list[Message]]]:
        """A copy of everything held: each session with its messages in seq order."""
        return {
            sid: (session, list(self._histories[sid].messages))
            for sid, session in self._sessions.items()
        }
