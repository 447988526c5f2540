"""The I/O primitives an in-process store backend provides.

:class:`~chatkeep.stores.local.LocalStore` implements the whole :class:`Store` protocol
(validation, expiry, seq, the rolling window, transactions) on top of these, so the
memory, SQLite and filesystem backends do I/O only. Every method is synchronous and
is called from one thread at a time, between ``begin`` and ``commit``/``rollback``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from chatkeep.core.models import JSON, Message, Session
from chatkeep.core.query import Cursor, SearchHit, SessionFilter, SessionSort
from chatkeep.stores.runner import Writer


@dataclass(frozen=True, slots=True)
class Counts:
    total_sessions: int
    expired_sessions: int
    total_messages: int
    sessions_by_owner: Mapping[str, int]


class Backend(ABC):
    """Storage primitives. Reads see the writes of the current transaction."""

    name: str
    writer: Writer = "thread"
    """Where write batches run: the store's thread, the event loop (no hop, but the loop
    waits for each commit), or ``auto`` (the loop while commits are quick; see
    :class:`~chatkeep.stores.runner.Placement`)."""

    # -- transactions -------------------------------------------------------
    @abstractmethod
    def begin(self, write: bool) -> None:
        """Start a transaction (``write``: it will change data)."""

    @abstractmethod
    def commit(self) -> None:
        """Make the transaction's writes durable (as durable as the backend is)."""

    @abstractmethod
    def rollback(self) -> None:
        """Undo every write since ``begin``."""

    @abstractmethod
    def close(self) -> None: ...

    def reader(self) -> Backend | None:
        """A second backend on the same data that the event loop may use directly for
        reads (no thread hop, no wait for the writer), or ``None`` if there is none.

        Only a backend whose reads never wait on a writer offers one (SQLite in WAL
        mode: a reader sees the last commit while a write is in progress).
        """
        return None

    # -- sessions -----------------------------------------------------------
    @abstractmethod
    def get_session(self, session_id: str) -> Session | None: ...

    @abstractmethod
    def put_session(self, session: Session, *, new: bool) -> None:
        """Insert (``new``) or replace the session record. Never touches messages."""

    @abstractmethod
    def delete_session(self, session_id: str) -> None:
        """Delete the session and all its messages."""

    @abstractmethod
    def query_sessions(
        self,
        flt: SessionFilter,
        sort: SessionSort,
        limit: int,
        cursor: Cursor | None,
        now: datetime,
    ) -> list[Session]:
        """Up to ``limit`` matching sessions after ``cursor``, in ``sort`` order
        (ties broken by id in the same direction)."""

    @abstractmethod
    def expired_ids(self, cutoff: datetime) -> list[str]:
        """Ids of sessions whose ``expires_at`` is at or before ``cutoff``."""

    @abstractmethod
    def search(
        self,
        terms: Sequence[str],
        owner: str | None,
        include_expired: bool,
        limit: int,
        now: datetime,
    ) -> list[SearchHit]:
        """Sessions where one message's words (content and metadata), or the session's
        metadata words, include every term; most recently active first (then id
        descending). Each hit lists up to 3 matching messages, newest first."""

    # -- messages -----------------------------------------------------------
    @abstractmethod
    def find_messages(self, session_id: str, ids: Sequence[str]) -> dict[str, Message]:
        """The stored messages of the session among ``ids``, by id."""

    @abstractmethod
    def insert_messages(self, session_id: str, messages: Sequence[Message]) -> None:
        """Add messages (their seqs are above every stored seq of the session)."""

    @abstractmethod
    def drop_oldest(self, session_id: str, count: int) -> None:
        """Delete the ``count`` messages with the lowest seqs."""

    @abstractmethod
    def read_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        newest: bool,
    ) -> list[Message]:
        """Messages with after_seq < seq < before_seq, in ascending seq order; with
        ``limit``, the first ``limit`` of them, or the last ``limit`` if ``newest``."""

    @abstractmethod
    def delete_message(self, session_id: str, seq: int) -> None: ...

    @abstractmethod
    def clear_messages(self, session_id: str) -> None: ...

    # -- maintenance --------------------------------------------------------
    @abstractmethod
    def counts(self, now: datetime) -> Counts: ...

    @abstractmethod
    def optimize(self) -> list[str]:
        """Compact / analyse; returns what was done, one phrase per operation."""

    @abstractmethod
    def check(self) -> tuple[list[str], dict[str, JSON]]:
        """A quick self-check: (issues found, details such as file sizes)."""

    def housekeeping_due(self) -> bool:
        """Whether :meth:`housekeeping` has work to do. Called between transactions."""
        return False

    def housekeeping(self) -> None:
        """Work that commits leave for later (SQLite: index the queued messages for
        search, copy the write-ahead log into the database file). The store runs it
        between transactions, on its thread, never on the event loop. It reports its own
        failures (the work is retried later); a backend without such work has nothing
        to do here."""
        return None
