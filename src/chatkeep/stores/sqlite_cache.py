"""Decoded sessions and their newest messages, shared by the connections of one store.

Decoding rows into records costs more than reading them, so the SQLite backend keeps
the records it has decoded. An entry is used only when the session row read in the
current transaction has the same *change key* (row id, version, times, last seq,
message count): every committed change of a session, by this process or any other,
changes its key, so a stale entry is never served. The writer publishes what it
committed (after ``COMMIT`` succeeds); readers publish what they decoded. Entries are
never changed in place, and records are read-only, so they are shared without copies.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

from chatkeep.core.models import Message, Session

Key = tuple[object, ...]


class Entry(NamedTuple):
    """A session's decoded records (a tuple: made for every write of a session, it costs
    a fraction of what a frozen dataclass does)."""

    key: Key
    pk: int
    row: tuple[object, ...]
    """The session's column values, as :data:`sqlite_query.SESSION_COLUMNS`."""
    session: Session
    newest: tuple[Message, ...] = ()
    """The session's newest messages in seq order (all of them if there are
    ``session.message_count``)."""
    epoch: int = -1
    """The cache's :attr:`RecordCache.epoch` when the writing connection published this
    entry after its commit; -1 for an entry a reader published."""

    def last(self, limit: int | None) -> list[Message] | None:
        """The newest ``limit`` messages (all if ``None``), if this entry holds them."""
        held = len(self.newest)
        if held == self.session.message_count:
            return list(self.newest if limit is None else self.newest[max(0, held - limit) :])
        if limit is not None and limit <= held:
            return list(self.newest[held - limit :])
        return None


class RecordCache:
    """A bounded LRU of :class:`Entry`, safe to use from several threads."""

    def __init__(self, sessions: int, messages: int) -> None:
        self.capacity = sessions
        self.depth = messages
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.epoch = 0
        """Entries the writing connection published in this epoch hold the session as
        it is in the file, unless another connection has committed since; the writer
        starts a new epoch when it finds that one has (see :meth:`Tracker.current`)."""

    def get(self, session_id: str) -> Entry | None:
        return self._entries.get(session_id)

    def publish(
        self, entry: Entry, expected: Entry | None = None, *, conditional: bool = False
    ) -> Entry | None:
        """Store ``entry``; if ``conditional``, only while ``expected`` is still the
        current entry (a reader must not overwrite what the writer published since).
        Returns what was stored."""
        if self.capacity <= 0:
            return None
        sid = entry.session.id
        if len(entry.newest) > self.depth:
            entry = entry._replace(newest=entry.newest[-self.depth :])
        entries = self._entries
        with self._lock:
            if conditional and entries.get(sid) is not expected:
                return None
            entries[sid] = entry
            entries.move_to_end(sid)
            while len(entries) > self.capacity:
                entries.popitem(last=False)
        return entry

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)


def change_key(pk: int, row: Sequence[object]) -> Key:
    """The change key of a session row (``row`` as :data:`sqlite_query.SESSION_COLUMNS`)."""
    return (pk, row[12], row[4], row[5], row[14], row[13])


def newest(
    known: Sequence[Message], message_count: int, depth: int | None = None
) -> tuple[Message, ...]:
    """The last of ``known`` that can still be the session's newest messages (at most
    ``depth`` of them, if given).

    ``known`` are newest messages in seq order, followed by any appended since; removing
    the oldest messages only lowers ``message_count``, and no more than that many can be.
    """
    held = len(known)
    keep = min(held, message_count) if depth is None else min(held, message_count, depth)
    return tuple(known if keep == held else known[held - keep :])


class Tracker:
    """What one connection's current transaction learnt and changed, for the cache."""

    def __init__(self, cache: RecordCache) -> None:
        self.cache = cache
        self._writing = False
        self._observed: dict[str, Entry | None] = {}
        self._valid: dict[str, Entry] = {}
        self._known: dict[str, list[Message]] = {}
        self._written: dict[str, tuple[int, tuple[object, ...], Session]] = {}
        self._deleted: set[str] = set()

    def begin(self, writing: bool) -> None:
        self.reset()
        self._writing = writing

    def reset(self) -> None:
        for part in (self._observed, self._valid, self._known, self._written, self._deleted):
            if part:
                part.clear()

    # -- reads ----------------------------------------------------------------
    def current(self, entry: Entry) -> bool:
        """Whether ``entry`` holds its session as this write transaction sees it,
        without reading the session's key: the writer published it in the cache's
        current epoch, and this transaction has not changed the session. The caller
        first makes sure that no other connection has committed since the epoch began."""
        sid = entry.session.id
        return (
            self._writing
            and entry.epoch == self.cache.epoch
            and sid not in self._written
            and sid not in self._known
            and sid not in self._deleted
        )

    def cached(self, session_id: str) -> Entry | None:
        entry = self.cache.get(session_id)
        self._observed[session_id] = entry
        return entry

    def confirmed(self, entry: Entry) -> Session:
        """``entry`` has the key the transaction read: its records are current."""
        self._valid[entry.session.id] = entry
        return entry.session

    def decoded(self, pk: int, row: tuple[object, ...], session: Session) -> None:
        entry = Entry(change_key(pk, row), pk, row, session)
        self._valid[session.id] = entry
        if not self._writing:
            self._publish_read(entry)

    def newest(self, session_id: str, limit: int | None) -> list[Message] | None:
        """The newest messages from the cache, if it holds them for this snapshot."""
        entry = self._valid.get(session_id)
        if entry is None or session_id in self._known:
            return None
        return entry.last(limit)

    def read_newest(self, session_id: str, messages: list[Message]) -> None:
        """The transaction read the newest messages from the database."""
        entry = self._valid.get(session_id)
        if self._writing or entry is None:
            return
        fresh = Entry(entry.key, entry.pk, entry.row, entry.session, tuple(messages))
        self._valid[session_id] = fresh
        self._publish_read(fresh, entry)

    def _publish_read(self, entry: Entry, over: Entry | None = None) -> None:
        sid = entry.session.id
        expected = over if over is not None else self._observed.get(sid)
        self._observed[sid] = self.cache.publish(entry, expected, conditional=True)

    # -- writes ---------------------------------------------------------------
    def _working(self, session_id: str) -> list[Message]:
        known = self._known.get(session_id)
        if known is None:
            entry = self._valid.get(session_id)
            known = self._known[session_id] = list(entry.newest) if entry else []
        return known

    def inserted(self, session_id: str, messages: Sequence[Message]) -> None:
        self._working(session_id).extend(messages)

    def removed(self, session_id: str, seq: int) -> None:
        known = self._working(session_id)
        known[:] = [m for m in known if m.seq != seq]

    def cleared(self, session_id: str) -> None:
        self._known[session_id] = []

    def dropped_oldest(self, session_id: str) -> None:
        self._working(session_id)

    def deleted(self, session_id: str) -> None:
        self._deleted.add(session_id)
        self._valid.pop(session_id, None)
        self._written.pop(session_id, None)
        self._known[session_id] = []

    def wrote(self, pk: int, row: tuple[object, ...], session: Session) -> None:
        self._written[session.id] = (pk, row, session)

    def committed(self) -> None:
        """Publish what the transaction wrote; call only after ``COMMIT`` succeeded."""
        if not self._writing:
            self.reset()
            return
        written = self._written
        if self._deleted:
            for sid in self._deleted - written.keys():
                self.cache.drop(sid)
        publish = self.cache.publish
        epoch = self.cache.epoch
        depth = self.cache.depth
        for sid, (pk, row, session) in written.items():
            known: Sequence[Message] | None = self._known.get(sid)
            if known is None:
                entry = self._valid.get(sid)
                known = entry.newest if entry else ()
            kept = newest(known, session.message_count, depth)
            publish(Entry(change_key(pk, row), pk, row, session, kept, epoch))
        self.reset()
