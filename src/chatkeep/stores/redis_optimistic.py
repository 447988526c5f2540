"""One operation on one session in as few round trips as it can: no lock, no WATCH, and
its writes sent as one script that checks the session's record first.

The session comes from the store's :class:`~chatkeep.stores.record_cache.SessionCache`
when it holds it (no round trip), kept with the exact bytes of its record; else from
the server with one ``GET``. A read of messages sends the record's ``GET`` in the same
round trip and compares it with the bytes the operation went on; messages whose bytes
the cache holds are not decoded again. The writes wait until the
operation ends, then go out as one ``EVALSHA`` of ``lua/apply_session.lua``: the same
commands a transaction's ``MULTI``/``EXEC`` would send (:func:`session_writes`, and the
outbox entry with write-behind), run only if the record still holds those bytes and no
transaction holds the session's lock. Every change of a session's messages rewrites its
record (its version, activity time and message count), so equal bytes mean an unchanged
session. If the check fails, nothing was written:
:class:`~chatkeep.errors.TransactionConflictError` asks the store to run the operation
again in a transaction (:class:`~chatkeep.stores.redis_txn.RedisTxn`). An append is
thus one round trip, and so is a read of the last messages.

What this cannot do in one script (several sessions, listing sessions to write them, a
command too long for the script) it hands over the same way, before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from chatkeep.core.models import Message, Session
from chatkeep.errors import TransactionConflictError
from chatkeep.stores import redis_script
from chatkeep.stores.memory_history import own_message
from chatkeep.stores.record_cache import Known, SessionCache
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.redis_link import Command, Link
from chatkeep.stores.redis_rows import decode_message, decode_messages, decode_session
from chatkeep.stores.redis_txn import Entry, RedisTxn, range_command

MEMO_BYTES = 16384
"""Messages longer than this (as stored) are decoded on every read, not kept."""


class NeedsTransaction(TransactionConflictError):
    """The operation does more than one checked script can; nothing was written."""


def _known(raw: bytes, session: Session, memo: dict[bytes, Message]) -> Known:
    """A cache entry: ``row`` holds the record's bytes and the session's messages last
    read or written, by their bytes; ``version`` is the session's."""
    return Known(session.version, (raw, memo), session)


class OptimisticRedisTxn(RedisTxn):
    """One operation without WATCH (see the module); ``finish`` sends the writes."""

    def __init__(
        self,
        link: Link,
        keys: Keys,
        write: bool,
        cache: SessionCache,
        *,
        log: bool,
        idle_millis: int | None,
    ) -> None:
        super().__init__(link, keys, False, log=log, idle_millis=idle_millis)
        self._writing = write
        self._cache = cache
        self._sid: str | None = None
        """The session the operation reads and writes."""
        self._raw: bytes | None = None
        """Its record's bytes as the operation read them (None: there was none)."""
        self._memo: dict[bytes, Message] = {}
        """Messages of the session by their bytes (shared with the cache: the same
        bytes always decode to the same message)."""
        self._checked = False
        """Whether ``_raw`` has been found current by the server."""

    @property
    def used_cache(self) -> bool:
        """Whether the operation went on a record from the cache not yet checked."""
        return self._sid is not None and not self._checked

    def forget(self) -> None:
        """Drop the operation's session from the cache (found out of date)."""
        if self._sid is not None:
            self._cache.drop(self._sid)

    def _stale(self) -> TransactionConflictError:
        self.forget()
        return TransactionConflictError(f"Redis at {self.link.where}: the session has changed")

    def _giving_up(self, what: str) -> NeedsTransaction:
        return NeedsTransaction(f"Redis at {self.link.where}: {what} needs a transaction")

    # -- the session ---------------------------------------------------------------
    async def _entry(self, session_id: str) -> Entry:
        entry = self._entries.get(session_id)
        if entry is not None:
            return entry
        if self._sid is not None:
            raise self._giving_up("a second session")
        known = self._cache.get(session_id)
        if known is None:
            about = f"session {session_id!r}"
            (raw,) = await self.link.run(("GET", self.keys.session(session_id)), about=about)
            stored = None if raw is None else decode_session(session_id, raw)
            self._checked = True
            if stored is not None:
                self._cache.put(_known(raw, stored, self._memo))
        else:
            raw, stored = known.row[0], known.session
            self._memo = cast("dict[bytes, Message]", known.row[1])
        self._sid, self._raw = session_id, raw
        entry = self._entries[session_id] = Entry(stored, stored)
        return entry

    def _check_reply(self, raw: object) -> None:
        """Raise a conflict unless ``raw`` (a reply to the record's GET) is ``_raw``."""
        if isinstance(raw, Exception) or raw != self._raw:
            raise self._stale()
        self._checked = True

    async def _check(self) -> None:
        """Find the record the operation went on still current, or raise a conflict."""
        if self._sid is None or self._checked:
            return
        (raw,) = await self.link.replies(("GET", self.keys.session(self._sid)))
        self._check_reply(raw)

    async def sessions(self, ids: Sequence[str]) -> list[Session | None]:
        """Listing and search read records here: only a read-only operation may."""
        if self._writing:
            raise self._giving_up("listing sessions to write them")
        return await super().sessions(ids)

    # -- messages ------------------------------------------------------------------
    async def _stored(
        self,
        session_id: str,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        newest: bool,
    ) -> list[Message]:
        if session_id != self._sid:
            return await super()._stored(session_id, after_seq, before_seq, limit, newest)
        command = range_command(
            self.keys.messages(session_id), after_seq, before_seq, limit, newest
        )
        raw, raws = await self.link.replies(("GET", self.keys.session(session_id)), command)
        self._check_reply(raw)
        if isinstance(raws, Exception):
            raise self.link.error(raws, f"session {session_id!r}") from raws  # type: ignore[arg-type]
        if not isinstance(raws, list):
            decode_messages(session_id, raws)  # raises: not a sorted set
        memo = self._memo
        messages = [memo.get(raw) or self._decode(session_id, raw) for raw in raws]
        if newest:
            messages.reverse()
        return messages

    def _decode(self, session_id: str, raw: object) -> Message:
        message = own_message(decode_message(session_id, raw))
        if isinstance(raw, bytes):
            self._learn(((raw, message),))
        return message

    def _learn(self, pairs: Iterable[tuple[bytes, Message]]) -> None:
        """Remember messages decoded from (or encoded to) their bytes, the newest kept."""
        memo = self._memo
        for raw, message in pairs:
            if len(raw) <= MEMO_BYTES:
                memo[raw] = message
        while len(memo) > self._cache.depth:
            del memo[next(iter(memo))]

    # -- the end ---------------------------------------------------------------------
    async def commit(self) -> None:
        """Nothing: :meth:`finish` sends the writes."""

    async def abort(self) -> None:
        self._entries.clear()

    async def finish(self) -> None:
        """Send the writes as one checked script; check a record read from the cache
        that nothing has checked yet."""
        dirty = [(sid, e) for sid, e in self._entries.items() if e.dirty]
        if not dirty:
            await self._check()
            return
        ((sid, entry),) = dirty
        commands = self._writes(sid, entry)
        if not redis_script.fits(commands):
            raise self._giving_up("a write this long")
        record, lock = self.keys.session(sid), self.keys.lock(sid)
        about = f"session {sid!r}"
        if not await redis_script.apply(self.link, record, lock, self._raw, commands, about):
            raise self._stale()
        self._checked = True
        self._remember(sid, entry, commands)

    def _remember(self, session_id: str, entry: Entry, commands: Sequence[Command]) -> None:
        """Keep the session as written in the cache, with the messages it wrote."""
        current = entry.current
        raw = _written(commands, self.keys.session(session_id))
        if current is None or raw is None:
            self._cache.drop(session_id)
            return
        added = entry.pending.added if entry.pending is not None else []
        if added:
            messages = self.keys.messages(session_id)
            (members,) = [c for c in commands if c[0] == "ZADD" and c[1] == messages]
            self._learn(zip(members[3::2], added, strict=True))  # type: ignore[arg-type]
        self._cache.put(_known(raw, current, self._memo))


def _written(commands: Sequence[Command], record: str) -> bytes | None:
    """The bytes ``commands`` write at the key ``record`` (None: they delete it)."""
    for command in commands:
        if command[0] == "SET" and command[1] == record:
            value = command[2]
            return value if isinstance(value, bytes) else None
    return None
