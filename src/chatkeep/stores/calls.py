"""Backend calls as values, so that each operation is written once for every backend.

An operation of :mod:`chatkeep.stores.ops` is a generator that yields the backend
:data:`Call` s it needs and gets each result sent back. :func:`run` carries them out
on a synchronous :class:`~chatkeep.stores.backend.Backend` (memory, SQLite, files: the
whole operation in one call, on the store's thread); :func:`run_async` awaits them on an
:class:`~chatkeep.stores.remote_backend.AsyncTxn` (PostgreSQL, Redis).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

from chatkeep.core.models import JSON, Message, Session
from chatkeep.core.query import Cursor, SearchHit, SessionFilter, SessionSort
from chatkeep.stores.backend import Counts

T = TypeVar("T")

Call: TypeAlias = tuple[str, tuple[object, ...], dict[str, object]]
"""A backend call: the method's name, its positional and its keyword arguments.

A plain tuple, made in a tenth of a NamedTuple's time, with a dict of its own for the
keywords (``**`` takes an exact dict as it is, any other mapping by copying it)."""


Op: TypeAlias = Generator[Call, Any, T]
"""An operation: yields calls, gets their results, returns ``T``."""


READS = frozenset(
    (
        "get_session", "query_sessions", "expired_ids", "search", "find_messages",
        "read_messages", "counts", "check",
    )
)  # fmt: skip
"""The calls that change nothing."""


def run(target: object, op: Op[T], made: list[str] | None = None) -> T:
    """Carry ``op`` out on a synchronous backend, noting in ``made`` (if given) the name
    of every call, as it is made."""
    try:
        method, args, kwargs = next(op)
        while True:
            if made is not None:
                made.append(method)
            result = getattr(target, method)(*args, **kwargs)
            method, args, kwargs = op.send(result)
    except StopIteration as done:
        value: T = done.value
        return value
    finally:
        op.close()


async def run_async(target: object, op: Op[T]) -> T:
    """Carry ``op`` out on an asynchronous transaction."""
    try:
        method, args, kwargs = next(op)
        while True:
            result = await getattr(target, method)(*args, **kwargs)
            method, args, kwargs = op.send(result)
    except StopIteration as done:
        value: T = done.value
        return value
    finally:
        op.close()


# -- the calls, typed -----------------------------------------------------------------


def get_session(session_id: str) -> Op[Session | None]:
    result: Session | None = yield ("get_session", (session_id,), {})
    return result


def put_session(session: Session, *, new: bool) -> Op[None]:
    yield ("put_session", (session,), {"new": new})


def delete_session(session_id: str) -> Op[None]:
    yield ("delete_session", (session_id,), {})


def query_sessions(
    flt: SessionFilter, sort: SessionSort, limit: int, cursor: Cursor | None, now: datetime
) -> Op[list[Session]]:
    result: list[Session] = yield ("query_sessions", (flt, sort, limit, cursor, now), {})
    return result


def expired_ids(cutoff: datetime) -> Op[list[str]]:
    result: list[str] = yield ("expired_ids", (cutoff,), {})
    return result


def search(
    terms: Sequence[str], owner: str | None, include_expired: bool, limit: int, now: datetime
) -> Op[list[SearchHit]]:
    call: Call = ("search", (terms, owner, include_expired, limit, now), {})
    result: list[SearchHit] = yield call
    return result


def find_messages(session_id: str, ids: Sequence[str]) -> Op[dict[str, Message]]:
    result: dict[str, Message] = yield ("find_messages", (session_id, ids), {})
    return result


def insert_messages(session_id: str, messages: Sequence[Message]) -> Op[None]:
    yield ("insert_messages", (session_id, messages), {})


def drop_oldest(session_id: str, count: int) -> Op[None]:
    yield ("drop_oldest", (session_id, count), {})


def read_messages(
    session_id: str,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int | None = None,
    newest: bool = False,
) -> Op[list[Message]]:
    bounds: dict[str, object] = {
        "after_seq": after_seq,
        "before_seq": before_seq,
        "limit": limit,
        "newest": newest,
    }
    result: list[Message] = yield ("read_messages", (session_id,), bounds)
    return result


def delete_message(session_id: str, seq: int) -> Op[None]:
    yield ("delete_message", (session_id, seq), {})


def clear_messages(session_id: str) -> Op[None]:
    yield ("clear_messages", (session_id,), {})


def counts(now: datetime) -> Op[Counts]:
    result: Counts = yield ("counts", (now,), {})
    return result


def check() -> Op[tuple[list[str], dict[str, JSON]]]:
    result: tuple[list[str], dict[str, JSON]] = yield ("check", (), {})
    return result


def optimize() -> Op[list[str]]:
    result: list[str] = yield ("optimize", (), {})
    return result
