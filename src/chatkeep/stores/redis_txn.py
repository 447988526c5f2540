"""A transaction of the Redis backend: optimistic, and queued by advisory locks.

Correctness comes from WATCH: a write transaction watches the record key of every
session it reads before reading it, keeps its writes in memory (reads merge them, see
:mod:`chatkeep.stores.redis_overlay`), and sends them in one MULTI/EXEC at the end. Every
change to a session's messages rewrites its record in the same EXEC, so the record key
stands for the whole session. If another writer changed a watched record, EXEC does
nothing and :class:`~chatkeep.errors.TransactionConflictError` is raised.

Progress comes from a per-session lock (``SET NX PX``) that a write transaction takes
before it first reads a session, and drops in its EXEC: writers of one session wait
for each other instead of failing over and over, and a long ``store.transaction()``
is not starved by short ones. The locks are advisory and leased (:data:`LOCK_LEASE`):
a crashed process never blocks a session for longer than the lease, and a lease that
runs out costs at most a conflict, never a wrong result. Sessions found by a listing
or an expiry scan are watched without a lock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import ResponseError

from chatkeep.core.models import JSON, Message, Session
from chatkeep.core.query import Cursor, SearchHit, SessionFilter, SessionSort
from chatkeep.errors import (
    ChatkeepError,
    CorruptDataError,
    SessionExistsError,
    SessionNotFoundError,
    TransactionConflictError,
)
from chatkeep.stores import redis_maintenance as maintenance
from chatkeep.stores import redis_outbox as outbox
from chatkeep.stores import redis_scan as scan
from chatkeep.stores.backend import Counts
from chatkeep.stores.memory_history import own_message, own_session
from chatkeep.stores.outbox import change_of
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.redis_link import Command, Link
from chatkeep.stores.redis_overlay import Pending, merge
from chatkeep.stores.redis_rows import decode_messages, decode_session
from chatkeep.stores.redis_writes import session_writes
from chatkeep.stores.remote_backend import AsyncTxn

LOCK_LEASE = timedelta(seconds=5)
"""How long a session's lock lasts unless its transaction ends first."""
LOCK_WAIT = 30.0
"""Seconds a transaction waits for a session's lock before it gives up (a conflict)."""

_MS = timedelta(milliseconds=1)
_log = logging.getLogger(__name__)


@dataclass(slots=True)
class Entry:
    """One session as this transaction sees it."""

    stored: Session | None
    current: Session | None
    dirty: bool = False
    pending: Pending | None = None
    whole: bool = False
    """The session was created (or replaced whole) in this transaction."""

    def changes(self) -> Pending:
        self.dirty = True
        if self.pending is None:
            self.pending = Pending()
        return self.pending


class RedisTxn(AsyncTxn):
    """``log``: also put each changed session's :class:`~chatkeep.stores.outbox.Change`
    in the write-behind outbox, in the same EXEC; ``idle_millis`` caps the native TTL
    of the sessions written (see :func:`~chatkeep.stores.redis_writes.gc_millis`)."""

    def __init__(
        self,
        link: Link,
        keys: Keys,
        write: bool,
        *,
        log: bool = False,
        idle_millis: int | None = None,
    ) -> None:
        self.link = link
        self.keys = keys
        self.write = write
        self.log = log
        self.idle_millis = idle_millis
        self._token = ""
        """What this transaction's locks hold (drawn when it takes its first one)."""
        self._entries: dict[str, Entry] = {}
        self._locks: list[str] = []
        self._watching = False

    # -- loading ----------------------------------------------------------------
    async def _entry(self, session_id: str) -> Entry:
        entry = self._entries.get(session_id)
        if entry is None:
            key = self.keys.session(session_id)
            about = f"session {session_id!r}"
            if self.write:
                raw = await self._lock_and_read(session_id, key)
            else:
                (raw,) = await self.link.run(("GET", key), about=about)
            stored = None if raw is None else decode_session(session_id, raw)
            entry = self._entries[session_id] = Entry(stored, stored)
        return entry

    async def _lock_and_read(self, session_id: str, key: str) -> object:
        """Take the session's lock (waiting for it), then watch and read its record."""
        lock = self.keys.lock(session_id)
        if not self._token:
            self._token = secrets.token_hex(8)
        take: Command = ("SET", lock, self._token, "NX", "PX", LOCK_LEASE // _MS)
        read: tuple[Command, Command] = (("WATCH", key), ("GET", key))
        about = f"session {session_id!r}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT
        delay = 0.001
        while True:
            # Counted as held while the answer is unknown: if the call is interrupted,
            # abort() releases it rather than leave it for the whole lease.
            self._locks.append(session_id)
            if not self._watching:
                taken, _, raw = await self.link.replies(take, *read)
                if taken is not None:
                    break
                self._locks.pop()
                await self.link.run(("UNWATCH",))
            else:
                (taken,) = await self.link.run(take)
                if taken is not None:
                    _, raw = await self.link.replies(*read)
                    break
                self._locks.pop()
            if loop.time() > deadline:
                raise TransactionConflictError(
                    f"session {session_id!r} stayed locked by other writers for {LOCK_WAIT:g} s"
                )
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.02)
        self._watching = True
        if isinstance(raw, Exception):
            raise self.link.error(raw, about) from raw  # type: ignore[arg-type]
        return raw

    async def sessions(self, ids: Sequence[str]) -> list[Session | None]:
        """The records of ``ids`` as this transaction sees them (watched when writing)."""
        missing = [i for i in dict.fromkeys(ids) if i not in self._entries]
        found: dict[str, Session | None] = {}
        if missing:
            keys = [self.keys.session(i) for i in missing]
            raws = await self.records(keys, watch=self.write)
            self._watching = self._watching or self.write
            for sid, raw in zip(missing, raws, strict=True):
                if isinstance(raw, ResponseError):
                    raise self.link.error(raw, f"session {sid!r}") from raw
                found[sid] = None if raw is None else decode_session(sid, raw)
                if self.write:
                    self._entries[sid] = Entry(found[sid], found[sid])
        return [found[i] if i in found else self._entries[i].current for i in ids]

    async def records(self, keys: Sequence[str], *, watch: bool = False) -> list[Any]:
        """The raw records at ``keys``: bytes, None, or the error reply of a key that
        holds another type (one GET each: MGET would answer nil for those)."""
        gets = [("GET", key) for key in keys]
        if not watch:
            return await self.link.replies(*gets)
        replies = await self.link.replies(("WATCH", *keys), *gets)
        if isinstance(replies[0], ResponseError):
            raise self.link.error(replies[0], None) from replies[0]
        return replies[1:]

    def overlay(self) -> dict[str, Session | None]:
        """The sessions this transaction changed: their new records (None: deleted)."""
        return {sid: e.current for sid, e in self._entries.items() if e.dirty}

    # -- sessions -----------------------------------------------------------------
    async def get_session(self, session_id: str) -> Session | None:
        return (await self._entry(session_id)).current

    async def put_session(self, session: Session, *, new: bool) -> None:
        entry = await self._entry(session.id)
        if new and entry.current is not None:
            raise SessionExistsError(session.id)
        if not new and entry.current is None:
            raise SessionNotFoundError(session.id)
        if new:
            entry.pending = Pending(wiped=True)
            entry.whole = True
        entry.current = own_session(session)
        entry.dirty = True

    async def delete_session(self, session_id: str) -> None:
        entry = await self._entry(session_id)
        entry.current = None
        entry.changes().clear()

    async def query_sessions(
        self,
        flt: SessionFilter,
        sort: SessionSort,
        limit: int,
        cursor: Cursor | None,
        now: datetime,
    ) -> list[Session]:
        return await scan.query(self, flt, sort, limit, cursor, now)

    async def expired_ids(self, cutoff: datetime) -> list[str]:
        return await scan.expired(self, cutoff)

    async def search(
        self,
        terms: Sequence[str],
        owner: str | None,
        include_expired: bool,
        limit: int,
        now: datetime,
    ) -> list[SearchHit]:
        return await scan.search(self, set(terms), owner, include_expired, limit, now)

    # -- messages -----------------------------------------------------------------
    async def find_messages(self, session_id: str, ids: Sequence[str]) -> dict[str, Message]:
        entry = self._entries.get(session_id)
        pending = None if entry is None else entry.pending
        found: dict[str, Message] = {}
        rest = list(dict.fromkeys(ids))
        if pending is not None:
            added = {m.id: m for m in pending.added}
            found = {i: added[i] for i in rest if i in added}
            rest = [] if pending.wiped else [i for i in rest if i not in found]
            rest = [i for i in rest if i not in pending.gone_ids]
        if not rest:
            return found
        about = f"session {session_id!r}"
        (seqs,) = await self.link.run(("HMGET", self.keys.ids(session_id), *rest), about=about)
        wanted = [(i, _seq(raw, about)) for i, raw in zip(rest, seqs, strict=True) if raw]
        wanted = [(i, s) for i, s in wanted if pending is None or not pending.hides(s)]
        if not wanted:
            return found
        key = self.keys.messages(session_id)
        replies = await self.link.run(
            *(("ZRANGEBYSCORE", key, s, s) for _, s in wanted), about=about
        )
        for (message_id, _), raws in zip(wanted, replies, strict=True):
            for message in decode_messages(session_id, raws):
                if message.id == message_id:
                    found[message_id] = message
        return found

    async def insert_messages(self, session_id: str, messages: Sequence[Message]) -> None:
        entry = await self._entry(session_id)
        entry.changes().added.extend(own_message(m) for m in messages)

    async def drop_oldest(self, session_id: str, count: int) -> None:
        entry = await self._entry(session_id)
        oldest = await self.read_messages(
            session_id, after_seq=None, before_seq=None, limit=count, newest=False
        )
        entry.changes().drop_stored_upto(oldest)

    async def read_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        newest: bool,
    ) -> list[Message]:
        entry = self._entries.get(session_id)
        pending = None if entry is None else entry.pending
        if pending is None:
            return await self._stored(session_id, after_seq, before_seq, limit, newest)
        added = pending.added_between(after_seq, before_seq)
        if pending.wiped:
            return merge([], added, limit, newest)
        want = None
        if limit is not None:
            want = limit - len(added) if newest else limit
            if want <= 0:
                return merge([], added, limit, newest)
            want += len(pending.gone)
        after = pending.stored_after(after_seq)
        stored = await self._stored(session_id, after, before_seq, want, newest)
        visible = [m for m in stored if not pending.hides(m.seq)]
        return merge(visible, added, limit, newest)

    async def _stored(
        self,
        session_id: str,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        newest: bool,
    ) -> list[Message]:
        """Messages as Redis holds them, in ascending seq order."""
        command = range_command(
            self.keys.messages(session_id), after_seq, before_seq, limit, newest
        )
        (raws,) = await self.link.run(command, about=f"session {session_id!r}")
        messages = decode_messages(session_id, raws)
        if newest:
            messages.reverse()
        return messages

    async def delete_message(self, session_id: str, seq: int) -> None:
        entry = await self._entry(session_id)
        for message in await self.read_messages(
            session_id, after_seq=seq - 1, before_seq=seq + 1, limit=None, newest=False
        ):
            entry.changes().remove(message)

    async def clear_messages(self, session_id: str) -> None:
        (await self._entry(session_id)).changes().clear()

    # -- maintenance ----------------------------------------------------------------
    async def counts(self, now: datetime) -> Counts:
        return await scan.counts(self, now)

    async def check(self) -> tuple[list[str], dict[str, JSON]]:
        return await maintenance.check(self)

    # -- the end ------------------------------------------------------------------------
    async def commit(self) -> None:
        """Send the writes in one MULTI/EXEC; raise TransactionConflictError if it was refused."""
        if not self.write:
            return
        dirty = [(sid, e) for sid, e in self._entries.items() if e.dirty]
        unlock: list[Command] = [("DEL", *map(self.keys.lock, self._locks))] if self._locks else []
        if not dirty:
            await self._finish(unlock)
            return
        commands: list[Command] = [("MULTI",)]
        for sid, entry in dirty:
            commands += self._writes(sid, entry)
        commands += unlock
        commands.append(("EXEC",))
        about = ", ".join(repr(sid) for sid, _ in dirty)
        replies = await self.link.run(*commands, about=f"session {about}")
        self._watching = False
        if replies[-1] is None:
            await self._finish(unlock)
            raise TransactionConflictError(
                f"another writer changed session {about} during this transaction; "
                "nothing was written"
            )
        self._locks.clear()
        for reply in replies[-1]:
            if isinstance(reply, Exception):
                raise self.link.error(reply, f"session {about}")  # type: ignore[arg-type]

    def _writes(self, session_id: str, entry: Entry) -> list[Command]:
        """The commands writing the session's changes, and logging them if the store
        logs (write-behind)."""
        commands = session_writes(
            self.keys,
            session_id,
            entry.stored,
            entry.current,
            entry.pending,
            self.idle_millis,
            logged=self.log,
        )
        if self.log:
            commands += self._logged(session_id, entry)
        return commands

    def _logged(self, session_id: str, entry: Entry) -> list[Command]:
        """The outbox commands recording what this transaction does to the session."""
        pending = entry.pending or Pending()
        change = change_of(
            session_id,
            entry.stored,
            entry.current,
            whole=entry.whole,
            added=pending.added,
            wiped=pending.wiped,
            floor=pending.floor,
            gone=sorted(pending.gone),
        )
        return [] if change is None else outbox.record(self.keys, change)

    async def abort(self) -> None:
        """Drop the writes, the watches and the locks (a failure to release them is
        logged: they expire after :data:`LOCK_LEASE`)."""
        self._entries.clear()
        unlock: list[Command] = [("DEL", *map(self.keys.lock, self._locks))] if self._locks else []
        try:
            await self._finish(unlock)
        except ChatkeepError as exc:
            _log.warning("Redis at %s: could not release session locks: %s", self.link.where, exc)

    async def _finish(self, unlock: list[Command]) -> None:
        commands = [*([("UNWATCH",)] if self._watching else []), *unlock]
        self._watching = False
        self._locks.clear()
        if commands:
            await self.link.run(*commands)


def range_command(
    key: str, after_seq: int | None, before_seq: int | None, limit: int | None, newest: bool
) -> list[str | int]:
    """The command reading the messages at ``key`` between the seqs (exclusive), the
    newest or the oldest ``limit`` of them (newest first when ``newest``)."""
    low = "-inf" if after_seq is None else f"({after_seq}"
    high = "+inf" if before_seq is None else f"({before_seq}"
    command: list[str | int] = (
        ["ZREVRANGEBYSCORE", key, high, low] if newest else ["ZRANGEBYSCORE", key, low, high]
    )
    if limit is not None:
        command += ["LIMIT", 0, limit]
    return command


def _seq(raw: bytes, about: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise CorruptDataError(about, f"bad seq {raw!r} in the message id index") from None
