"""The full-text index of messages, written in batches after the messages themselves.

Writing a message's words to FTS5 in the transaction that appends it would add the
index's pages (about half of an append's) to every commit. Instead, an appended message
gets its ``doc`` number (its row-to-be in ``message_search``) at once and a row in
``message_search_queue``; :meth:`MessageIndex.catch_up` later indexes every queued
message in one go: before each search, on ``optimize``, and once enough are queued (in
a transaction of its own, on the store's thread: ``SqliteBackend.housekeeping``).
The queue is part of the database, so messages whose transaction committed are found
again, and indexed, after a crash or by another process.

A transaction's queue rows are written together (:meth:`MessageIndex.write_queue`, one
``executemany``), before anything that reads the queue or deletes messages (whose
triggers take their rows out of the queue) and before the commit: a batch of appends
then pays for one statement instead of one per message.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from chatkeep.core.models import Message
from chatkeep.stores.sqlite_rows import index_text

logger = logging.getLogger("chatkeep.stores.sqlite")

BATCH = 256
"""How many queued messages make the store index them all (after the batch that
queued the last of them)."""

LAST_DOC = (
    "SELECT max(coalesce((SELECT max(doc) FROM message_search_queue), 0), "
    "coalesce((SELECT max(id) FROM message_search_content), 0))"
)
QUEUE = "INSERT INTO message_search_queue (doc, session_id, seq) VALUES (?, ?, ?)"
QUEUED = (
    "SELECT q.doc, q.session_id, q.seq, m.content, m.content_is_json, m.metadata "
    "FROM message_search_queue AS q "
    "JOIN messages AS m ON m.session_id = q.session_id AND m.seq = q.seq"
)
INDEX = "INSERT INTO message_search (rowid, words, session_id, seq) VALUES (?, ?, ?, ?)"
EMPTY_QUEUE = "DELETE FROM message_search_queue"
COUNT_QUEUED = "SELECT count(*) FROM message_search_queue"


class MessageIndex:
    """Numbers, queues and indexes the messages written on one (writing) connection.

    Each method runs inside the connection's open write transaction; :meth:`begin`,
    :meth:`committed` and :meth:`rolled_back` follow that transaction.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._last_doc: int | None = None
        self._committed: tuple[int, int] | None = None
        """``PRAGMA data_version`` and the last doc number after this connection's last
        commit: while no other connection commits, the version stays the same."""
        self._version = 0
        self._version_read = False
        self.queued: int = conn.execute(COUNT_QUEUED).fetchone()[0]
        """Queued messages, as far as this connection knows (others may queue more)."""
        self._queued_before = self.queued
        self._unwritten: list[tuple[int, str, int]] = []
        """Queue rows of this transaction not written yet (see :meth:`write_queue`)."""

    def begin(self) -> None:
        self._last_doc = None
        self._queued_before = self.queued
        self._version_read = False
        self._unwritten.clear()

    def version(self) -> int:
        """``PRAGMA data_version``, read once per write transaction: it changes when
        another connection commits, and the write lock keeps them out meanwhile."""
        if not self._version_read:
            self._version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            self._version_read = True
        return self._version

    def forget_version(self) -> None:
        """The transaction was committed and begun again (others may have committed)."""
        self._version_read = False

    def committed(self) -> None:
        self._unwritten.clear()  # written by the commit (nothing is left unless it failed)
        if self._last_doc is not None:
            self._committed = (self._version, self._last_doc)
        self._last_doc = None

    def rolled_back(self) -> None:
        self._last_doc = None
        self.queued = self._queued_before
        self._unwritten.clear()

    def reserve(self, count: int) -> int:
        """The first of ``count`` new doc numbers for messages of this transaction."""
        last = self._last_doc
        if last is None:
            # Once per transaction (the write lock keeps other writers out meanwhile), and
            # only if another connection has committed since this one did.
            known = self._committed
            if known is not None and known[0] == self.version():
                last = known[1]
            else:
                last = int(self._conn.execute(LAST_DOC).fetchone()[0])
        self._last_doc = last + count
        return last + 1

    def enqueue(self, session_id: str, messages: Sequence[Message], first_doc: int) -> None:
        """Queue ``messages`` (inserted with docs from ``first_doc`` on) for indexing; their
        rows are written by the next :meth:`write_queue`."""
        unwritten = self._unwritten
        for offset, message in enumerate(messages):
            unwritten.append((first_doc + offset, session_id, message.seq))
        self.queued += len(messages)

    def write_queue(self) -> None:
        """Write the queue rows of this transaction's appends so far. Call it before any
        statement that reads the queue or deletes messages, and before the commit."""
        if self._unwritten:
            self._conn.executemany(QUEUE, self._unwritten)
            self._unwritten.clear()

    def due(self) -> bool:
        return self.queued >= BATCH

    def catch_up(self) -> int:
        """Index every queued message (of any connection), all or nothing; how many
        were queued."""
        self.write_queue()
        rows = self._conn.execute(QUEUED).fetchall()
        if rows:
            self._conn.execute("SAVEPOINT catch_up")
            try:
                self._conn.executemany(INDEX, _documents(rows))
                self._conn.execute(EMPTY_QUEUE)
            except BaseException:
                self._conn.execute("ROLLBACK TO catch_up")
                self._conn.execute("RELEASE catch_up")
                raise
            self._conn.execute("RELEASE catch_up")
        self.queued = 0
        return len(rows)


def _documents(rows: Sequence[Sequence[Any]]) -> list[tuple[int, str, str, int]]:
    """The ``message_search`` rows of queued messages.

    Every message gets its row, even one without words: the doc numbers in use are then
    exactly those of ``message_search`` and of the queue, which is where :data:`LAST_DOC`
    looks. A message whose row cannot be decoded (reading it fails too) is indexed
    without words rather than stopping every later commit; it is logged.
    """
    documents = []
    for doc, session_id, seq, content, is_json, metadata in rows:
        try:
            value = json.loads(content) if is_json else content
            text = (
                index_text(value) if metadata == "{}" else index_text(value, json.loads(metadata))
            )
        except ValueError as exc:
            logger.warning(
                "message %s of session %r is not indexed for search: bad row (%s)",
                seq,
                session_id,
                exc,
            )
            text = ""
        documents.append((doc, text, session_id, seq))
    return documents
