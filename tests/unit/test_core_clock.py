from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chatkeep.core.clock import FakeClock, SystemClock


def test_fake_clock_starts_at_a_fixed_aware_instant() -> None:
    clock = FakeClock()
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)


def test_fake_clock_stands_still_until_moved() -> None:
    clock = FakeClock()
    first = clock.now()
    assert clock.now() == first
    assert clock.advance(timedelta(seconds=90)) == first + timedelta(seconds=90)
    assert clock.now() == first + timedelta(seconds=90)


def test_fake_clock_set_and_custom_start() -> None:
    start = datetime(2001, 2, 3, 4, 5, 6, 7, tzinfo=UTC)
    clock = FakeClock(start)
    assert clock.now() == start
    later = datetime(2040, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    clock.set(later)
    assert clock.now() == later


def test_fake_clock_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="aware"):
        FakeClock(datetime(2030, 1, 1))


def test_system_clock_is_aware_utc_and_current() -> None:
    before = datetime.now(UTC)
    now = SystemClock().now()
    after = datetime.now(UTC)
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= after
