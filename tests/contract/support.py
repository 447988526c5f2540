"""Helpers for the contract tests: building data, and checking that nothing changed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from chatkeep import (
    FakeClock,
    InvalidInputError,
    Message,
    NewMessage,
    Session,
    SessionExpiredError,
    SessionFilter,
    SessionNotFoundError,
    Store,
)

Snapshot = list[tuple[Session, list[Message] | None]]


def user(content: str, id: str | None = None) -> NewMessage:
    return NewMessage(role="user", content=content, id=id)


def batch(*contents: str) -> list[NewMessage]:
    return [user(c) for c in contents]


def seqs(messages: Iterable[Message]) -> list[int]:
    return [m.seq for m in messages]


def contents(messages: Iterable[Message]) -> list[object]:
    return [m.content for m in messages]


async def filled(store: Store, count: int, **create: object) -> Session:
    """A new session holding messages "m1".."m<count>" (seqs 1..count)."""
    session = await store.create_session(**create)  # type: ignore[arg-type]
    if count:
        await store.append_messages(session.id, batch(*(f"m{i}" for i in range(1, count + 1))))
    return await store.get_session(session.id)


async def snapshot(store: Store) -> Snapshot:
    """Every session (expired ones too) with its messages (None when unreadable)."""
    everything = SessionFilter(include_expired=True)
    out: Snapshot = []
    cursor: str | None = None
    while True:
        page = await store.list_sessions(everything, "created_at", 1000, cursor)
        for session in page.sessions:
            try:
                messages: list[Message] | None = await store.get_messages(session.id)
            except (SessionExpiredError, SessionNotFoundError):
                messages = None
            out.append((session, messages))
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


@asynccontextmanager
async def unchanged(store: Store) -> AsyncIterator[None]:
    """The block must leave every session and message as it found them."""
    before = await snapshot(store)
    yield
    assert await snapshot(store) == before, "the store changed"


@asynccontextmanager
async def rejected(
    store: Store, field: str
) -> AsyncIterator[pytest.ExceptionInfo[InvalidInputError]]:
    """The block must raise InvalidInputError naming ``field`` and change nothing."""
    async with unchanged(store):
        with pytest.raises(InvalidInputError, match=f"^{re.escape(field)}: ") as info:
            yield info
    assert info.value.field == field


def ids_of(sessions: Sequence[Session]) -> list[str]:
    return [s.id for s in sessions]


async def rich_store(store: Store, clock: FakeClock) -> None:
    """Sessions covering every field: trimmed and popped history, lock, no ttl, JSON content."""
    a = await store.create_session(
        id="a",
        owner="alice",
        device_id="550e8400-e29b-41d4-a716-446655440000",
        persistence="client",
        ttl=timedelta(hours=2),
        max_messages=3,
        metadata={"k": {"nested": [1, "two", None]}, "é": "ü"},
        tags=["x", "y"],
    )
    clock.advance(timedelta(seconds=5))
    await store.append_messages(
        a.id,
        [
            user("one"),
            NewMessage(
                role="tool", content={"call": "f", "args": [1]}, user_id="u", metadata={"m": 1}
            ),
            user("three"),
            user("four", id="key-4"),
            user("five"),
        ],
    )
    await store.pop_message(a.id)
    await store.set_session_lock(a.id, "agent-7", ttl=600)
    clock.advance(timedelta(seconds=5))
    await store.create_session(id="b", ttl=None)
    await store.create_session(id="c", owner="bob")
    await store.append_messages("c", batch("hello\nworld", ""))
