"""The filesystem backend: a directory with one append-only JSONL log per session.

The working state is a :class:`MemoryBackend`; the logs (format in ``filesystem_log``)
are its durable record, replayed at open. Each write is recorded as a log op, and
``commit`` makes them durable before returning: one appended line per session changed,
through a journal when there are several (``filesystem_journal``, ``filesystem_dir``).
A session deleted in a transaction has its log removed, or rewritten whole if it was
created again. A log that grows well past its live content is rewritten as a snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from chatkeep.core.models import JSON, Message, Session
from chatkeep.core.query import Cursor, SearchHit, SessionFilter, SessionSort
from chatkeep.errors import ConfigurationError
from chatkeep.stores.backend import Backend, Counts
from chatkeep.stores.filesystem_dir import LogDirectory
from chatkeep.stores.filesystem_journal import FileAction
from chatkeep.stores.filesystem_log import Op, messages_op, session_op, snapshot_lines
from chatkeep.stores.memory import MemoryBackend
from chatkeep.stores.runner import Writer, writer_option

_SWITCH = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


class FileBackend(Backend):
    name = "file"

    def __init__(self, logs: LogDirectory) -> None:
        self._logs = logs
        self._memory = MemoryBackend()
        self._pending: dict[str, list[Op]] = {}
        self._rewrite: set[str] = set()

    @classmethod
    def open(cls, path: str, options: Mapping[str, str]) -> FileBackend:
        """Open (creating it if needed) the store directory ``path``; one opener at a time.

        Options: ``fsync`` (``on``/``off``, default on): sync every commit to disk;
        ``writer`` (``auto``/``thread``/``loop``, default auto): where operations run, as
        for SQLite (:class:`~chatkeep.stores.runner.Placement`).
        """
        sync, writer = _options(options)
        backend = cls(LogDirectory.open(path, sync))
        backend.writer = writer
        try:
            backend._logs.load(backend._memory)
        except BaseException:
            backend.close()
            raise
        return backend

    # -- transactions -------------------------------------------------------
    def begin(self, write: bool) -> None:
        if write:
            self._logs.writable()
        self._memory.begin(write)

    def commit(self) -> None:
        pending, rewrite = self._pending, self._rewrite
        self._pending, self._rewrite = {}, set()
        try:
            actions = [self._action(sid, ops, sid in rewrite) for sid, ops in pending.items()]
            if actions:
                self._logs.write(actions)
        except BaseException:
            self._memory.rollback()
            raise
        self._memory.commit()
        self._logs.written(actions, self._memory)

    def _action(self, session_id: str, ops: list[Op], rewrite: bool) -> FileAction:
        session = self._memory.get_session(session_id)
        if session is None:
            return FileAction(session_id, "remove")
        if rewrite:
            lines = snapshot_lines(session, self._memory.iter_messages(session_id))
            return FileAction(session_id, "replace", lines)
        return FileAction(session_id, "append", [ops], self._logs.size(session_id))

    def rollback(self) -> None:
        self._pending, self._rewrite = {}, set()
        self._memory.rollback()

    def close(self) -> None:
        self.rollback()
        self._memory.close()
        self._logs.close()

    def _record(self, session_id: str, op: Op) -> None:
        self._pending.setdefault(session_id, []).append(op)

    # -- sessions -----------------------------------------------------------
    def get_session(self, session_id: str) -> Session | None:
        self._logs.usable(session_id)
        return self._memory.get_session(session_id)

    def put_session(self, session: Session, *, new: bool) -> None:
        self._logs.usable(session.id)
        if new:
            self._logs.check_name(session.id)
        self._memory.put_session(session, new=new)
        self._record(session.id, session_op(session))

    def delete_session(self, session_id: str) -> None:
        self._logs.usable(session_id)
        if self._memory.get_session(session_id) is None:
            return
        self._memory.delete_session(session_id)
        self._pending[session_id] = []
        self._rewrite.add(session_id)

    def query_sessions(
        self,
        flt: SessionFilter,
        sort: SessionSort,
        limit: int,
        cursor: Cursor | None,
        now: datetime,
    ) -> list[Session]:
        return self._memory.query_sessions(flt, sort, limit, cursor, now)

    def expired_ids(self, cutoff: datetime) -> list[str]:
        return self._memory.expired_ids(cutoff)

    def search(
        self,
        terms: Sequence[str],
        owner: str | None,
        include_expired: bool,
        limit: int,
        now: datetime,
    ) -> list[SearchHit]:
        return self._memory.search(terms, owner, include_expired, limit, now)

    # -- messages -----------------------------------------------------------
    def find_messages(self, session_id: str, ids: Sequence[str]) -> dict[str, Message]:
        self._logs.usable(session_id)
        return self._memory.find_messages(session_id, ids)

    def insert_messages(self, session_id: str, messages: Sequence[Message]) -> None:
        self._memory.insert_messages(session_id, messages)
        self._record(session_id, messages_op(messages))

    def drop_oldest(self, session_id: str, count: int) -> None:
        self._memory.drop_oldest(session_id, count)
        if count > 0:
            self._record(session_id, {"op": "drop_oldest", "count": count})

    def read_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        newest: bool,
    ) -> list[Message]:
        self._logs.usable(session_id)
        return self._memory.read_messages(
            session_id, after_seq=after_seq, before_seq=before_seq, limit=limit, newest=newest
        )

    def delete_message(self, session_id: str, seq: int) -> None:
        self._memory.delete_message(session_id, seq)
        self._record(session_id, {"op": "delete_message", "seq": seq})

    def clear_messages(self, session_id: str) -> None:
        self._memory.clear_messages(session_id)
        self._record(session_id, {"op": "clear"})

    # -- maintenance --------------------------------------------------------
    def counts(self, now: datetime) -> Counts:
        return self._memory.counts(now)

    def optimize(self) -> list[str]:
        """Rewrite every log that holds more than its live records as a snapshot."""
        if self._pending:
            raise RuntimeError("expected no uncommitted writes before optimize, got some")
        return self._logs.compact_all(self._memory)

    def contents(self) -> dict[str, tuple[Session, list[Message]]]:
        """A copy of everything loaded: each session with its messages in seq order."""
        return self._memory.contents()

    def check(self) -> tuple[list[str], dict[str, JSON]]:
        issues, details = self._memory.check()
        disk_issues, disk_details = self._logs.report()
        details.update(disk_details)
        return issues + disk_issues, details


def _options(options: Mapping[str, str]) -> tuple[bool, Writer]:
    """``fsync`` (whether commits are synced to disk) and ``writer``."""
    for key in options:
        if key not in ("fsync", "writer"):
            raise ConfigurationError(
                key, "is not an option of the file store (known: fsync, writer)"
            )
    value = options.get("fsync", "on")
    if value.lower() not in _SWITCH:
        raise ConfigurationError("fsync", f"must be on or off, got {value!r}")
    return _SWITCH[value.lower()], writer_option(options)
