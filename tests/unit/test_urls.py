"""Store URLs shown in errors never show a password."""

from __future__ import annotations

import pytest

from chatkeep.stores.urls import masked


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        (
            "postgresql://u:pw@h/db?password=x&sslmode=disable",
            "postgresql://u:***@h/db?password=***&sslmode=disable",
        ),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgres//u:pw@h/db", "postgres//u:***@h/db"),
        ("sqlite:///chat.db", "sqlite:///chat.db"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert masked(url) == shown
