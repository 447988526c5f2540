"""Fixtures shared by every test."""

from __future__ import annotations

import pytest

from chatkeep.core.clock import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that stands still until the test moves it (2030-01-01T00:00:00Z)."""
    return FakeClock()
