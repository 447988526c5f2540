from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

import chatkeep
from chatkeep.core.clock import FakeClock
from chatkeep.manager.sweeper import Periodic, Sweeper
from chatkeep.stores.base import Store

TICK = timedelta(milliseconds=5)


# -- Periodic ---------------------------------------------------------------
def test_periodic_needs_a_positive_interval() -> None:
    async def job() -> None:
        return None

    with pytest.raises(ValueError, match="positive interval"):
        Periodic("job", timedelta(0), job)


async def test_periodic_runs_the_job_again_and_again() -> None:
    calls = 0
    enough = asyncio.Event()

    async def job() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            enough.set()

    periodic = Periodic("job", TICK, job)
    periodic.start()
    assert periodic.running
    await asyncio.wait_for(enough.wait(), timeout=10)
    await periodic.stop()
    assert not periodic.running
    stopped_at = calls
    assert stopped_at >= 3
    await asyncio.sleep(TICK.total_seconds() * 4)
    assert calls == stopped_at


async def test_a_failing_run_is_logged_and_the_next_still_happens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    recovered = asyncio.Event()

    async def job() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        recovered.set()

    periodic = Periodic("flaky", TICK, job)
    with caplog.at_level(logging.ERROR, logger="chatkeep.manager.sweeper"):
        periodic.start()
        await asyncio.wait_for(recovered.wait(), timeout=10)
        await periodic.stop()
    assert periodic.failures == 1
    assert periodic.runs >= 2
    assert "flaky failed" in caplog.text
    assert "disk full" in caplog.text


async def test_periodic_start_twice_is_refused_and_stop_is_idempotent() -> None:
    async def job() -> None:
        return None

    periodic = Periodic("job", timedelta(hours=1), job)
    await periodic.stop()
    periodic.start()
    with pytest.raises(RuntimeError, match="expected job to be stopped"):
        periodic.start()
    await periodic.stop()
    await periodic.stop()
    periodic.start()
    await periodic.stop()


# -- Sweeper ----------------------------------------------------------------
@pytest.fixture
async def stores(fake_clock: FakeClock) -> AsyncIterator[list[Store]]:
    async with (
        chatkeep.open_store("memory://", clock=fake_clock) as a,
        chatkeep.open_store("memory://", clock=fake_clock) as b,
    ):
        yield [a, b]


def sweeper(
    stores: list[Store], retention: timedelta, reported: list[str], clock: FakeClock
) -> Sweeper:
    named = [(f"store{i}", store) for i, store in enumerate(stores)]
    return Sweeper(lambda: named, retention, reported.append, clock)


async def test_each_expired_session_is_reported_once(
    stores: list[Store], fake_clock: FakeClock
) -> None:
    reported: list[str] = []
    sweep = sweeper(stores, timedelta(hours=1), reported, fake_clock)
    await stores[0].create_session(id="a", ttl=10)
    await stores[1].create_session(id="b", ttl=20)
    await stores[1].create_session(id="forever", ttl=None)
    assert (await sweep.sweep()).expired == []
    fake_clock.advance(timedelta(seconds=15))
    first = await sweep.sweep()
    assert first.expired == ["a"]
    assert first.cleaned == 0
    fake_clock.advance(timedelta(seconds=10))
    assert (await sweep.sweep()).expired == ["b"]
    assert (await sweep.sweep()).expired == []
    assert reported == ["a", "b"]


async def test_sessions_expired_longer_than_the_retention_are_deleted(
    stores: list[Store], fake_clock: FakeClock
) -> None:
    sweep = sweeper(stores, timedelta(minutes=5), [], fake_clock)
    await stores[0].create_session(id="a", ttl=10)
    fake_clock.advance(timedelta(seconds=11))
    assert (await sweep.sweep()).cleaned == 0
    assert await stores[0].expire_sessions() == ["a"]
    fake_clock.advance(timedelta(minutes=5))
    report = await sweep.sweep()
    assert report.cleaned == 1
    assert report.expired == []
    assert await stores[0].expire_sessions() == []


async def test_without_retention_a_sweep_deletes_what_it_reports(
    stores: list[Store], fake_clock: FakeClock
) -> None:
    reported: list[str] = []
    sweep = sweeper(stores, timedelta(0), reported, fake_clock)
    await stores[1].create_session(id="x", ttl=1)
    fake_clock.advance(timedelta(seconds=1))
    report = await sweep.sweep()
    assert (report.expired, report.cleaned) == (["x"], 1)
    with pytest.raises(chatkeep.SessionNotFoundError):
        await stores[1].get_session("x")


async def test_a_revived_session_is_reported_again_when_it_expires_again(
    stores: list[Store], fake_clock: FakeClock
) -> None:
    reported: list[str] = []
    sweep = sweeper(stores, timedelta(hours=1), reported, fake_clock)
    await stores[0].create_session(id="a", ttl=10)
    fake_clock.advance(timedelta(seconds=10))
    await sweep.sweep()
    await stores[0].extend_expiration("a", timedelta(seconds=30))
    sweep.forget("a")
    fake_clock.advance(timedelta(seconds=30))
    await sweep.sweep()
    assert reported == ["a", "a"]


async def test_a_failing_store_is_reported_and_the_others_are_still_swept(
    stores: list[Store], fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    reported: list[str] = []
    sweep = sweeper(stores, timedelta(hours=1), reported, fake_clock)
    await stores[0].create_session(id="a", ttl=5)
    await stores[1].create_session(id="b", ttl=5)
    fake_clock.advance(timedelta(seconds=5))
    await sweep.sweep()
    await stores[0].close()
    fake_clock.advance(timedelta(seconds=1))
    with caplog.at_level(logging.WARNING, logger="chatkeep.manager.sweeper"):
        report = await sweep.sweep()
    assert report.expired == []
    assert len(report.errors) == 1
    assert report.errors[0].startswith("store0: finding expired sessions failed")
    assert "store0" in caplog.text
    assert reported == ["a", "b"]


async def test_stop_lets_a_run_in_progress_finish() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[bool] = []

    async def job() -> None:
        started.set()
        await release.wait()
        finished.append(True)

    periodic = Periodic("slow", TICK, job)
    periodic.start()
    await asyncio.wait_for(started.wait(), timeout=10)
    stopping = asyncio.create_task(periodic.stop())
    await asyncio.sleep(TICK.total_seconds() * 2)
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, timeout=10)
    assert finished == [True]
    assert periodic.runs == 1


class _ClockMovesAfterTheLook:
    """A store whose clock moves on right after the sweeper looks for expired sessions."""

    def __init__(self, store: Store, clock: FakeClock, by: timedelta) -> None:
        self._store, self._clock, self._by = store, clock, by

    async def expire_sessions(self) -> list[str]:
        expired = await self._store.expire_sessions()
        self._clock.advance(self._by)
        self._by = timedelta(0)
        return expired

    async def cleanup_expired_sessions(self, **options: Any) -> int:
        return await self._store.cleanup_expired_sessions(**options)


async def test_a_session_expiring_during_a_sweep_is_reported_before_it_is_deleted(
    stores: list[Store], fake_clock: FakeClock
) -> None:
    await stores[0].create_session(id="a", ttl=5)
    moving = _ClockMovesAfterTheLook(stores[0], fake_clock, timedelta(seconds=10))
    reported: list[str] = []
    sweep = Sweeper(lambda: [("store", moving)], timedelta(0), reported.append, fake_clock)  # type: ignore[list-item]
    first = await sweep.sweep()
    assert (first.expired, first.cleaned) == ([], 0)
    second = await sweep.sweep()
    assert (second.expired, second.cleaned) == (["a"], 1)
    assert reported == ["a"]
