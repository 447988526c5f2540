"""One operation on one session in as few round trips as it can: no ``BEGIN``, no row
lock, and its writes sent as one statement that checks the session's row version.

An operation of :mod:`chatkeep.stores.ops` reads its session, decides, then writes. Here
the session comes from the store's :class:`~chatkeep.stores.record_cache.SessionCache`
when it holds it (no round trip), else from the server with its row version. The writes
wait until the operation ends, then go out as a single statement, atomic by itself:
the update of the session row *if its version is still the one read*, with the writes of
its messages (:func:`~chatkeep.stores.postgres_query.keyed_write`). A read of messages
checks the version in the same statement. If the version has changed, the statement
changes nothing and :class:`~chatkeep.errors.TransactionConflictError` asks the store to
run the operation again, in a transaction that locks the row
(:class:`~chatkeep.stores.postgres_txn.PostgresTxn`). An append is thus one round trip, and
so is a read of the last messages; a session read from the cache that nothing checks
is checked before the operation returns.

What this cannot do in one statement (several sessions, a write before a read, several
writes of a session row, listing sessions to write them) it hands over the same way,
before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import compress
from operator import ne
from typing import Any

from chatkeep.core.models import Message, Session
from chatkeep.core.query import Cursor, SessionFilter, SessionSort
from chatkeep.errors import SessionExistsError, TransactionConflictError
from chatkeep.stores import postgres_query as q
from chatkeep.stores.deadlines import Deadlines
from chatkeep.stores.postgres_errors import reading, writing
from chatkeep.stores.postgres_rows import (
    decode_message,
    message_columns,
    message_row,
    session_row,
    tokens,
)
from chatkeep.stores.postgres_txn import PostgresTxn
from chatkeep.stores.record_cache import Known, SessionCache

_VERSION = q.SESSION_COLUMNS.index("version")
_POSITIONS = range(q.SESSION_WIDTH)
_FOLDABLE = frozenset(
    {
        ("insert",),
        ("insert_one",),
        ("drop",),
        ("delete",),
        ("clear",),
        ("insert", "drop"),
        ("insert_one", "drop"),
    }
)
"""The writes of messages that one statement makes as calls in this order would
(``insert_one``: an insert of one message, sent as values rather than arrays)."""


class NeedsTransaction(TransactionConflictError):
    """The operation does more than one checked statement can; nothing was written."""


class OptimisticTxn(PostgresTxn):
    """One operation without a transaction (see the module). ``finish`` sends the writes;
    until then nothing is written: the methods that write only note what to send, so
    they meet no driver error to translate."""

    def __init__(
        self, conn: Any, write: bool, where: str, deadlines: Deadlines, cache: SessionCache
    ) -> None:
        super().__init__(conn, False, where, deadlines)
        self._writing = write
        self._sessions = cache
        self._known: Known | None = None
        """The session the operation read, as it read it."""
        self._absent: str | None = None
        """The id of the session it looked for and did not find."""
        self._checked = False
        """Whether a statement has found ``_known`` still current."""
        self._writes: list[tuple[str, tuple[object, ...]]] = []
        """Writes of messages of ``_known``'s session: (kind, parameters)."""
        self._kinds: tuple[str, ...] = ()
        """The kinds of ``_writes``."""
        self._inserted: tuple[Message, ...] = ()
        self._final: tuple[str, Session] | None = None
        """The write of the session row: ("update" | "insert" | "delete", session)."""

    @property
    def used_cache(self) -> bool:
        """Whether the operation went on a session read from the cache and not checked."""
        return self._known is not None and not self._checked

    def forget(self) -> None:
        """Drop what the operation read from the cache (it was found out of date)."""
        if self._known is not None:
            self._sessions.drop(self._known.session.id)

    def _stale(self) -> TransactionConflictError:
        self.forget()
        return TransactionConflictError(f"PostgreSQL {self.where}: the session has changed")

    def _giving_up(self, what: str) -> NeedsTransaction:
        return NeedsTransaction(f"PostgreSQL {self.where}: {what} needs a transaction")

    async def before_read(self) -> None:
        self._check_read()

    def _check_read(self) -> None:
        if self._writes or self._final is not None:
            raise self._giving_up("a read after a write")

    def _mine(self, session_id: str) -> Known:
        known = self._known
        if known is None or known.session.id != session_id:
            raise self._giving_up("a write of a session not read first")
        return known

    # -- sessions -----------------------------------------------------------
    async def get_session(self, session_id: str) -> Session | None:
        """A session the operation read before or the cache holds costs no statement,
        nor the coroutine of the decorator that translates driver errors."""
        self._check_read()
        known = self._known
        if known is not None and known.session.id == session_id:
            return known.session
        if self._absent == session_id:
            return None
        if known is not None or self._absent is not None:
            raise self._giving_up("a second session")
        known = self._sessions.get(session_id)
        if known is None:
            return await self._fetch_session(session_id)
        self._known = known
        return known.session

    @writing  # the checks of a read are made
    async def _fetch_session(self, session_id: str) -> Session | None:
        row = await self._conn.fetchrow(q.GET_KEYED_SESSION, session_id)
        if row is None:
            self._absent = session_id
            return None
        known = self._known = self._remember(row[q.SESSION_WIDTH], row)
        self._checked = True
        return known.session

    def _remember(self, version: int, row: Sequence[Any]) -> Known:
        session = self._session(row)
        empty = () if session.message_count == 0 else None
        known = Known(version, tuple(row[: q.SESSION_WIDTH]), session, empty)
        self._sessions.put(known)
        return known

    async def put_session(self, session: Session, *, new: bool) -> None:
        if self._final is not None:
            raise self._giving_up("a second write of a session")
        if new:
            if self._writes or session.id != self._absent:
                raise self._giving_up("a new session not looked for first")
            self._final = ("insert", session)
            return
        self._mine(session.id)
        self._final = ("update", session)

    async def delete_session(self, session_id: str) -> None:
        known = self._mine(session_id)
        if self._writes or self._final is not None:
            raise self._giving_up("a delete after a write")
        self._final = ("delete", known.session)

    @reading
    async def query_sessions(
        self,
        flt: SessionFilter,
        sort: SessionSort,
        limit: int,
        cursor: Cursor | None,
        now: datetime,
    ) -> list[Session]:
        if self._writing:
            raise self._giving_up("listing sessions to write them")
        return await super().query_sessions(flt, sort, limit, cursor, now)

    @reading
    async def expired_ids(self, cutoff: datetime) -> list[str]:
        if self._writing:
            raise self._giving_up("listing sessions to write them")
        return await super().expired_ids(cutoff)

    # -- messages -----------------------------------------------------------
    def _add_write(self, session_id: str, kind: str, *params: object) -> None:
        self._mine(session_id)
        kinds = (*self._kinds, kind)
        if self._final is not None or kinds not in _FOLDABLE:
            raise self._giving_up("this order of writes")
        self._writes.append((kind, params))
        self._kinds = kinds

    async def insert_messages(self, session_id: str, messages: Sequence[Message]) -> None:
        if len(messages) == 1:
            self._add_write(session_id, "insert_one", *message_row(messages[0]))
            self._inserted = tuple(messages)
        elif messages:
            self._add_write(session_id, "insert", *message_columns(messages))
            self._inserted = tuple(messages)

    async def drop_oldest(self, session_id: str, count: int) -> None:
        known = self._mine(session_id)
        if count > known.session.message_count:
            raise self._giving_up("dropping messages just inserted")
        self._add_write(session_id, "drop", count)

    async def delete_message(self, session_id: str, seq: int) -> None:
        self._add_write(session_id, "delete", seq)

    async def clear_messages(self, session_id: str) -> None:
        self._add_write(session_id, "clear")

    @reading
    async def read_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        newest: bool,
    ) -> list[Message]:
        known = self._known
        if known is None or known.session.id != session_id:
            return await super().read_messages(
                session_id, after_seq=after_seq, before_seq=before_seq, limit=limit, newest=newest
            )
        whole = after_seq is None and before_seq is None and newest
        held = known.last(limit) if whole else None
        if held is not None:
            await self._check()
            return held
        rows = await self._conn.fetch(
            q.READ_KEYED_NEWEST if newest else q.READ_KEYED_OLDEST,
            session_id,
            q.SEQ_MIN if after_seq is None else after_seq,
            q.SEQ_MAX if before_seq is None else before_seq,
            limit,
            known.version,
        )
        if not rows:
            raise self._stale()
        self._checked = True
        if newest:
            rows.reverse()
        found = [decode_message(session_id, row) for row in rows if row[0] is not None]
        if whole:  # the newest messages, as of the version checked
            self._known = known.with_newest(tuple(found), self._sessions.depth)
            self._sessions.put(self._known)
        return found

    async def _check(self) -> None:
        """Find the session read from the cache still current, or raise a conflict."""
        known = self._known
        if known is None or self._checked:
            return
        found = await self._conn.fetchval(q.SESSION_VERSION, known.session.id)
        if found != known.version:
            raise self._stale()
        self._checked = True

    # -- the end --------------------------------------------------------------
    @writing
    async def finish(self) -> None:
        """Send the writes as one statement; check a session read from the cache that
        nothing has checked yet."""
        final = self._final
        if final is None:
            if self._writes:
                raise self._giving_up("a write of messages alone")
            await self._check()
            return
        kind, session = final
        if kind == "insert":
            await self._insert(session)
        elif kind == "delete":
            await self._delete(session)
        else:
            await self._update(session)

    async def _insert(self, session: Session) -> None:
        row = session_row(session)
        version = await self._conn.fetchval(q.INSERT_KEYED_SESSION, *row, tokens(session.metadata))
        if version is None:
            raise SessionExistsError(session.id)
        self._sessions.put(Known(version, row, session, () if session.message_count == 0 else None))

    async def _delete(self, session: Session) -> None:
        assert self._known is not None
        if not await self._conn.fetchval(q.DELETE_KEYED_SESSION, session.id, self._known.version):
            raise self._stale()
        self._sessions.drop(session.id)

    async def _update(self, session: Session) -> None:
        known = self._known
        assert known is not None
        row = session_row(session)
        changed = tuple(compress(_POSITIONS, map(ne, known.row, row)))
        if _VERSION not in changed:  # the statement always writes the row
            changed = tuple(sorted((*changed, _VERSION)))
        params = [row[i] for i in changed]
        if q.METADATA in changed:
            params.append(tokens(session.metadata))
        for _, values in self._writes:
            params.extend(values)
        sql = q.keyed_write(changed, self._kinds)
        version = await self._conn.fetchval(sql, session.id, known.version, *params)
        if version is None:
            raise self._stale()
        self._checked = True
        newest = known.newest
        for kind, values in self._writes:
            if newest is None:
                break
            if kind in ("insert", "insert_one"):
                newest += self._inserted
            elif kind == "clear":
                newest = ()
            elif kind == "delete":
                newest = newest[:-1] if newest and newest[-1].seq == values[0] else None
        self._sessions.put(Known(version, row, session).with_newest(newest, self._sessions.depth))
