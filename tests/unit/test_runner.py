"""Where write batches run: ``writer=auto`` keeps quick batches on the event loop and
moves slow ones to the store's thread, and back when they are quick again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import chatkeep
from chatkeep import NewMessage
from chatkeep.stores.local import LocalStore
from chatkeep.stores.runner import QUICK_BATCH, RECENT, Placement, waiting


def test_fixed_writers_never_move() -> None:
    loop, thread = Placement("loop"), Placement("thread")
    for placement in (loop, thread):
        placement.took(10.0)
    assert loop.on_loop()
    assert not thread.on_loop()


def test_auto_moves_to_the_thread_when_most_batches_are_slow_and_back_when_quick() -> None:
    placement = Placement("auto")
    assert placement.on_loop()
    slow = 0
    while placement.on_loop():
        placement.took(QUICK_BATCH * 10)
        slow += 1
    assert slow == RECENT // 2 + 1, "it moves once more than half of the last batches were slow"
    quick = 0
    while not placement.on_loop():
        placement.took(QUICK_BATCH / 10)
        quick += 1
    assert quick == RECENT // 2, "and comes back once no more than half were"


def test_a_rare_slow_batch_does_not_move_auto_to_the_thread() -> None:
    placement = Placement("auto")
    for n in range(10 * RECENT):
        placement.took(QUICK_BATCH * 100 if n % 5 == 0 else QUICK_BATCH / 2)
        assert placement.on_loop()


def test_an_unknown_writer_is_refused() -> None:
    with pytest.raises(ValueError, match="thread, loop, auto"):
        Placement("elsewhere")  # type: ignore[arg-type]


def note_commits(store: chatkeep.Store, first: Callable[[], None] = lambda: None) -> list[int]:
    """The threads the store's commits run on, from now on, each commit after ``first()``."""
    assert isinstance(store, LocalStore)
    backend: Any = store._backend
    commit = backend.commit
    threads: list[int] = []

    def commit_and_note() -> None:
        first()
        commit()
        threads.append(threading.get_ident())

    backend.commit = commit_and_note
    return threads


async def test_a_store_commits_on_its_thread_while_the_disk_is_slow(tmp_path: Path) -> None:
    # synchronous=normal: commits without an fsync stay quick on a loaded machine too.
    async with chatkeep.open_store(f"sqlite:///{tmp_path}/s.db?synchronous=normal") as store:
        slow = True

        def wait_while_slow() -> None:
            if slow:
                time.sleep(QUICK_BATCH * 10)

        threads = note_commits(store, wait_while_slow)
        session = await store.create_session()
        loop_thread = threading.get_ident()
        assert threads == [loop_thread]  # the first batch runs on the loop: none was slow
        n = 0
        while threads[-1] == loop_thread and n < RECENT:
            await store.append_messages(session.id, NewMessage(role="user", content=f"{n}"))
            n += 1
        assert len(threads) == RECENT // 2 + 2, "it moved once most recent batches were slow"
        for _ in range(2):
            await store.append_messages(session.id, NewMessage(role="user", content=f"{n}"))
            n += 1
        assert threads[-3:] == [threads[-1]] * 3
        assert threads[-1] != loop_thread
        slow = False
        sent = 0
        while threads[-1] != loop_thread and sent < 500:
            await store.append_messages(session.id, NewMessage(role="user", content=f"q{sent}"))
            sent += 1
        assert threads[-1] == loop_thread, "quick commits brought the batches back to the loop"
        assert sent > 1
        last = [m.content for m in await store.get_messages(session.id, last=2)]
        assert last == ([f"q{sent - 2}", f"q{sent - 1}"])


async def test_operations_that_grow_with_the_data_run_on_the_thread(tmp_path: Path) -> None:
    async with chatkeep.open_store(f"sqlite:///{tmp_path}/s.db?synchronous=normal") as store:
        assert isinstance(store, LocalStore)
        threads = note_commits(store)
        session = await store.create_session(metadata={"team": "a"})
        await store.append_messages(session.id, NewMessage(role="user", content="hello"))
        loop_thread = threading.get_ident()
        assert threads == [loop_thread, loop_thread]
        recent = list(store._group.placement.recent)
        await store.bulk_update(chatkeep.SessionFilter(), {"metadata": {"team": "b"}})
        assert await store.search_sessions("hello")
        await store.cleanup_expired_sessions()
        await store.optimize()
        assert len(threads) >= 5
        assert loop_thread not in threads[2:]
        assert list(store._group.placement.recent) == recent


async def test_batches_busy_with_work_stay_on_the_loop(tmp_path: Path) -> None:
    async with chatkeep.open_store(f"sqlite:///{tmp_path}/s.db?synchronous=normal") as store:

        def work() -> None:
            end = time.thread_time() + QUICK_BATCH * 3
            while time.thread_time() < end:
                pass

        threads = note_commits(store, work)
        session = await store.create_session()
        for n in range(RECENT * 2):
            await store.append_messages(session.id, NewMessage(role="user", content=f"{n}"))
        assert set(threads) == {threading.get_ident()}
        assert len(await store.get_messages(session.id)) == RECENT * 2


def test_waiting_runs_the_function_with_its_arguments() -> None:
    seen: list[object] = []
    took = waiting(seen.append, "batch")
    assert seen == ["batch"]
    assert took >= 0


def test_waiting_counts_waiting_not_work() -> None:
    def work() -> None:
        end = time.thread_time() + QUICK_BATCH * 20
        while time.thread_time() < end:
            pass

    # Sleeping is waiting (less the little CPU time the sleep call itself takes).
    assert waiting(time.sleep, QUICK_BATCH * 20) >= QUICK_BATCH * 15
    # The CPU time of the running thread is not waiting (a loaded machine may take the
    # CPU away for a while in between: allow half of the work for that).
    assert waiting(work) < QUICK_BATCH * 10
