"""Many tasks writing to one session at once: every seq given once, nothing lost."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from chatkeep import Message, NewMessage, Store

from .support import seqs

TASKS = 32
PER_TASK = 10


class Boom(Exception):
    """Abandons a transaction."""


async def writer(store: Store, session_id: str, task: int) -> list[Message]:
    stored: list[Message] = []
    for i in range(PER_TASK):
        size = 1 + (task + i) % 2
        batch = [NewMessage(role="user", content=f"t{task}-{i}-{j}") for j in range(size)]
        stored += await store.append_messages(session_id, batch)
        await asyncio.sleep(0)
    return stored


def check_history(history: list[Message], acknowledged: list[Message]) -> None:
    assert seqs(history) == list(range(1, len(history) + 1))
    assert Counter(m.seq for m in acknowledged) == Counter(seqs(history))
    by_seq = {m.seq: m for m in history}
    assert all(by_seq[m.seq] == m for m in acknowledged)


async def test_concurrent_appends_to_one_session(store: Store) -> None:
    s = await store.create_session(max_messages=100_000)
    results = await asyncio.gather(*(writer(store, s.id, t) for t in range(TASKS)))
    acknowledged = [m for batch in results for m in batch]
    history = await store.get_messages(s.id)
    expected = sum(1 + (t + i) % 2 for t in range(TASKS) for i in range(PER_TASK))
    assert len(history) == len(acknowledged) == expected
    check_history(history, acknowledged)
    for task, stored in enumerate(results):
        assert seqs(stored) == sorted(seqs(stored)), f"task {task} saw seqs go backwards"
    after = await store.get_session(s.id)
    assert (after.message_count, after.last_seq) == (expected, expected)


async def test_concurrent_idempotent_retries(store: Store) -> None:
    s = await store.create_session(max_messages=100_000)

    async def retry(key: str) -> list[Message]:
        return await store.append_messages(s.id, NewMessage(role="user", content=key, id=key))

    results = await asyncio.gather(*(retry(f"k{i % 8}") for i in range(TASKS)))
    history = await store.get_messages(s.id)
    assert len(history) == 8
    assert seqs(history) == list(range(1, 9))
    for i, (message,) in enumerate(results):
        assert message.id == f"k{i % 8}"
        assert message in history


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
async def test_appends_racing_a_transaction(store: Store, commit: bool) -> None:
    s = await store.create_session(max_messages=100_000)
    other = await store.create_session(max_messages=100_000)
    started = asyncio.Event()

    async def transaction() -> list[Message]:
        stored: list[Message] = []
        try:
            async with store.transaction() as tx:
                started.set()
                for i in range(20):
                    stored += await tx.append_messages(
                        s.id, NewMessage(role="tool", content=f"tx{i}")
                    )
                    stored += await tx.append_messages(
                        other.id, NewMessage(role="tool", content="o")
                    )
                    await asyncio.sleep(0)
                if not commit:
                    raise Boom
        except Boom:
            return []
        return stored

    async def late_writer(task: int) -> list[Message]:
        await started.wait()
        return await writer(store, s.id, task)

    results = await asyncio.gather(
        *(writer(store, s.id, t) for t in range(TASKS // 2)),
        transaction(),
        *(late_writer(t) for t in range(TASKS // 2, TASKS)),
    )
    acknowledged = [m for batch in results for m in batch if m.session_id == s.id]
    history = await store.get_messages(s.id)
    check_history(history, acknowledged)
    in_tx = [m for m in history if m.role == "tool"]
    if commit:
        assert len(in_tx) == 20
        assert seqs(in_tx) == list(range(in_tx[0].seq, in_tx[0].seq + 20)), "the tx interleaved"
        assert len(await store.get_messages(other.id)) == 20
    else:
        assert in_tx == []
        assert await store.get_messages(other.id) == []


async def test_cancelled_writers_leave_a_consistent_history(store: Store) -> None:
    s = await store.create_session(max_messages=100_000)
    tasks = [asyncio.create_task(writer(store, s.id, t)) for t in range(TASKS)]
    for _ in range(5):
        await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    finished = [r for r in done if isinstance(r, list)]
    assert len(finished) >= TASKS // 2
    history = await store.get_messages(s.id)
    assert seqs(history) == list(range(1, len(history) + 1))
    assert all(m in history for batch in finished for m in batch)
    assert (await store.get_session(s.id)).message_count == len(history)
    assert seqs(await store.append_messages(s.id, NewMessage(role="user", content="after"))) == [
        len(history) + 1
    ]
    assert (await store.health()).healthy


async def test_a_cancelled_transaction_is_rolled_back(store: Store) -> None:
    s = await store.create_session(max_messages=100_000)
    inside = asyncio.Event()

    async def stuck_transaction() -> None:
        async with store.transaction() as tx:
            await tx.append_messages(s.id, NewMessage(role="user", content="never"))
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck_transaction())
    await inside.wait()
    waiting = asyncio.create_task(store.append_messages(s.id, NewMessage(role="user", content="x")))
    await asyncio.sleep(0)
    assert not waiting.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (stored,) = await waiting
    assert stored.seq == 1
    assert [m.content for m in await store.get_messages(s.id)] == ["x"]
