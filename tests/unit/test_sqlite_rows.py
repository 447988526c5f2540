"""SQLite rows: a renewed session's row built from the previous one, and search text."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from listing_reference import NOW, make_session

from chatkeep.core.frozen import freeze_object
from chatkeep.core.models import JSON, SessionLock, evolve
from chatkeep.core.rules import renewed
from chatkeep.stores.rows import index_words, token
from chatkeep.stores.sqlite_rows import RENEWED, index_text, session_row, session_row_after

_CHANGES: list[dict[str, object]] = [
    {},
    {"message_count": 4, "last_seq": 9},
    {"ttl": None},
    {"ttl": timedelta(minutes=5)},
    {"metadata": freeze_object({"k": "v"})},
    {"metadata": {"plain": "dict"}},
    {"tags": frozenset({"b", "a"})},
    {"lock": SessionLock("agent", NOW, None)},
    {"owner": "alice", "device_id": "d1"},
    {"max_messages": 7},
]


@pytest.mark.parametrize("changes", _CHANGES)
def test_a_row_built_from_the_previous_one_equals_a_fresh_row(changes: dict[str, object]) -> None:
    before = make_session("s", metadata=freeze_object({"a": [1, 2]}), tags=frozenset({"t"}))
    row = session_row(before)
    after = renewed(before, NOW + timedelta(seconds=3), **changes)
    built, columns = session_row_after(before, row, after)
    assert built == session_row(after)
    assert {i for i, (was, now) in enumerate(zip(row, built, strict=True)) if was != now} <= set(
        columns
    )


def test_only_the_renewed_columns_are_compared_when_the_settings_are_the_same_objects() -> None:
    before = make_session("s", metadata=freeze_object({"a": 1}))
    after = renewed(before, NOW + timedelta(seconds=1), message_count=1, last_seq=1)
    assert session_row_after(before, session_row(before), after)[1] == RENEWED
    # Equal but not the same objects: every column is encoded and compared again.
    copy = evolve(after, metadata=freeze_object({"a": 1}))
    assert tuple(session_row_after(before, session_row(before), copy)[1]) == tuple(range(18))


def _reference(*values: JSON) -> str:
    return " ".join(sorted(token(w) for w in index_words(*values)))


def test_search_text_is_the_sorted_tokens_of_every_word() -> None:
    rnd = random.Random(3)
    letters = "abcXYZ09 _-é\u0301İßǂ\u00b2Σ"
    samples: list[JSON] = ["", "plain words 42", "Ünïcode and ASCII", {"k y": [1, 2.5, None, "Z"]}]
    samples += [
        "".join(rnd.choice(letters) for _ in range(rnd.randint(0, 14))) for _ in range(2000)
    ]
    for value in samples:
        assert index_text(value) == _reference(value)
        assert index_text(value, {"m": value}) == _reference(value, {"m": value})
