"""The primitives of a networked backend (PostgreSQL, Redis), awaited on the event loop.

They mirror :class:`~chatkeep.stores.backend.Backend`'s data methods, made ``async``
and bound to one transaction (one pooled connection, or one Redis pipeline): a
:class:`RemoteStore` runs each operation of :mod:`chatkeep.stores.ops` against an
:class:`AsyncTxn` that :meth:`AsyncBackend.transaction` opens, so the rules are
written once for every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from chatkeep.core.models import JSON, Message, Session
from chatkeep.core.query import Cursor, SearchHit, SessionFilter, SessionSort
from chatkeep.stores.backend import Counts


class AsyncTxn(ABC):
    """One transaction's view of the data: reads see its own writes. The semantics of
    each method are those of the same method of :class:`~chatkeep.stores.backend.Backend`."""

    @abstractmethod
    async def get_session(self, session_id: str) -> Session | None: ...

    @abstractmethod
    async def put_session(self, session: Session, *, new: bool) -> None: ...

    @abstractmethod
    async def delete_session(self, session_id: str) -> None: ...

    @abstractmethod
    async def query_sessions(
        self,
        flt: SessionFilter,
        sort: SessionSort,
        limit: int,
        cursor: Cursor | None,
        now: datetime,
    ) -> list[Session]: ...

    @abstractmethod
    async def expired_ids(self, cutoff: datetime) -> list[str]: ...

    @abstractmethod
    async def search(
        self,
        terms: Sequence[str],
        owner: str | None,
        include_expired: bool,
        limit: int,
        now: datetime,
    ) -> list[SearchHit]: ...

    @abstractmethod
    async def find_messages(self, session_id: str, ids: Sequence[str]) -> dict[str, Message]: ...

    @abstractmethod
    async def insert_messages(self, session_id: str, messages: Sequence[Message]) -> None: ...

    @abstractmethod
    async def drop_oldest(self, session_id: str, count: int) -> None: ...

    @abstractmethod
    async def read_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        newest: bool,
    ) -> list[Message]: ...

    @abstractmethod
    async def delete_message(self, session_id: str, seq: int) -> None: ...

    @abstractmethod
    async def clear_messages(self, session_id: str) -> None: ...

    @abstractmethod
    async def counts(self, now: datetime) -> Counts: ...

    @abstractmethod
    async def check(self) -> tuple[list[str], dict[str, JSON]]: ...


class AsyncBackend(ABC):
    """A networked backend: owns its connection pool; hands out transactions."""

    name: str

    @classmethod
    @abstractmethod
    async def open(cls, url: str, options: Mapping[str, str]) -> AsyncBackend:
        """Connect (a bounded number of tries) to the service at ``url``; an
        unreachable service raises StoreUnavailableError naming the URL, password
        masked."""

    @abstractmethod
    def transaction(self, write: bool) -> AbstractAsyncContextManager[AsyncTxn]:
        """A transaction: committed when the block ends, rolled back if it raises.
        Driver errors surface as StoreUnavailableError."""

    def operation(self, write: bool) -> AbstractAsyncContextManager[AsyncTxn]:
        """Where the store runs a single operation first: a :meth:`transaction` unless the
        backend has a cheaper way. That way may raise TransactionConflictError before it
        writes anything; the store then runs the operation again in a :meth:`transaction`."""
        return self.transaction(write)

    @abstractmethod
    async def optimize(self) -> list[str]: ...

    @abstractmethod
    async def close(self) -> None: ...
