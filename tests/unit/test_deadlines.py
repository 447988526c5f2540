"""The shared timer that bounds calls: a call past its deadline is cancelled where it
waits and told so; a call in time, or one cancelled from elsewhere, is left alone."""

from __future__ import annotations

import asyncio

import pytest

from chatkeep.stores.deadlines import Deadlines

LIMIT = 0.05


async def call(deadlines: Deadlines, seconds: float) -> bool:
    """Wait ``seconds`` under a deadline; True if the wait ran out of time."""
    started = deadlines.begin()
    try:
        try:
            await asyncio.sleep(seconds)
        finally:
            late = deadlines.end(started)
    except asyncio.CancelledError:
        if late:
            return True
        raise
    return False


async def test_a_call_in_time_is_left_alone() -> None:
    deadlines = Deadlines(LIMIT)
    assert not await call(deadlines, 0)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(LIMIT * 2)  # the timer fires with nothing left to cancel
    assert not await call(deadlines, 0)


async def test_a_call_past_its_deadline_is_cancelled_where_it_waits() -> None:
    deadlines = Deadlines(LIMIT)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await call(deadlines, 10)
    assert LIMIT <= loop.time() - began < 5
    # The cancellation was taken back: the task goes on, and can wait again.
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)
    assert not await call(deadlines, 0)


async def test_each_call_runs_out_at_its_own_deadline() -> None:
    """The timer armed for the first call's deadline re-arms for the calls after it."""
    deadlines = Deadlines(LIMIT * 4)
    loop = asyncio.get_running_loop()
    ended: dict[str, float] = {}

    async def timed(name: str, delay: float, seconds: float) -> bool:
        await asyncio.sleep(delay)
        began = loop.time()
        late = await call(deadlines, seconds)
        ended[name] = loop.time() - began
        return late

    results = await asyncio.gather(
        timed("quick", 0, 0),
        timed("slow", LIMIT * 2, 10),
        timed("later", LIMIT * 3, 10),
    )
    assert list(results) == [False, True, True]
    assert ended["quick"] < LIMIT
    assert LIMIT * 4 <= ended["slow"] < 5
    assert LIMIT * 4 <= ended["later"] < 5


async def test_a_cancellation_from_elsewhere_goes_on() -> None:
    deadlines = Deadlines(10)
    task = asyncio.create_task(call(deadlines, 10))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadlines.close()


async def test_a_cancellation_from_elsewhere_wins_over_the_deadline() -> None:
    deadlines = Deadlines(LIMIT)
    events: list[str] = []

    async def caller() -> None:
        started = deadlines.begin()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("cancelled")
            # Cancelled from elsewhere while the deadline also runs out.
            await asyncio.sleep(LIMIT * 3)
            raise
        finally:
            events.append(f"late={deadlines.end(started)}")

    task = asyncio.create_task(caller())
    await asyncio.sleep(LIMIT / 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == ["cancelled", "late=False"]


async def test_close_disarms_the_timer() -> None:
    deadlines = Deadlines(LIMIT)
    task = asyncio.create_task(call(deadlines, LIMIT * 4))
    await asyncio.sleep(0)
    deadlines.close()
    assert not await task  # no deadline any more: the wait ran its course


async def test_a_call_outside_a_task_is_refused() -> None:
    deadlines = Deadlines(LIMIT)
    failure: list[BaseException] = []

    def bare_callback() -> None:
        try:
            deadlines.begin()
        except RuntimeError as exc:
            failure.append(exc)

    asyncio.get_running_loop().call_soon(bare_callback)
    await asyncio.sleep(0.01)
    assert len(failure) == 1
    assert "in a task" in str(failure[0])
