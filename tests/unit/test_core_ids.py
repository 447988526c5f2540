from __future__ import annotations

import re
import threading
import time

import pytest
from ulid import ULID

from chatkeep.core import ids
from chatkeep.core.ids import check_device_id, check_id, new_id
from chatkeep.errors import InvalidInputError

ULID_TEXT = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def test_new_ids_are_unique_ulids_that_pass_the_id_rule() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:50]:
        assert ULID_TEXT.fullmatch(value)
        assert check_id(value, "id") == value


def test_new_ids_decode_as_ulids_of_the_current_time() -> None:
    """Checked against another ULID implementation (python-ulid)."""
    before = time.time()
    value = new_id()
    after = time.time()
    assert before - 0.001 <= ULID.from_str(value).timestamp <= after + 0.001
    assert value[0] in "01234567"  # 128 bits in 130: the first character holds 3


def test_new_id_encodes_the_time_and_randomness_as_the_ulid_spec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    millis = 1_469_918_176_385  # the spec's example time: 01ARYZ6S41
    monkeypatch.setattr(ids, "_last", 0)
    monkeypatch.setattr(ids.time, "time_ns", lambda: millis * 1_000_000 + 999_999)
    monkeypatch.setattr(ids.os, "urandom", lambda n: bytes(range(1, n + 1)))
    value = new_id()
    assert value[:10] == "01ARYZ6S41"
    assert value == str(ULID.from_bytes(millis.to_bytes(6) + bytes(range(1, 11))))


def test_ids_of_one_millisecond_or_of_a_clock_gone_back_still_sort_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [5_000_000_000_000]
    monkeypatch.setattr(ids, "_last", 0)
    monkeypatch.setattr(ids.time, "time_ns", lambda: clock[0])
    made = [new_id() for _ in range(100)]
    clock[0] -= 2_000_000_000  # two seconds back
    made += [new_id() for _ in range(100)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert {ULID.from_str(v).milliseconds for v in made[:100]} == {5_000_000}


def test_ids_made_on_many_threads_at_once_are_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_last", 0)
    monkeypatch.setattr(ids.time, "time_ns", lambda: 7_000_000_000_000)  # one millisecond
    made: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        out.extend(new_id() for _ in range(2000))

    threads = [threading.Thread(target=work, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for out in made for value in out]
    assert len(set(every)) == len(every) == 16_000
    assert all(out == sorted(out) for out in made)


@pytest.mark.parametrize(
    "value",
    ["a", "0", "A" * 128, "a._:-b", "chat:2024-01-01.v2", "Z9", "01HZX3Y5V1QJ0G4S8W2E7B6N5M"],
)
def test_valid_ids_are_returned_unchanged(value: str) -> None:
    assert check_id(value, "id") == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "A" * 129,
        "-a",
        ".a",
        "_a",
        ":a",
        "..",
        "../etc",
        "a/b",
        "a\\b",
        "a b",
        "é",
        "a\n",
        "a\x00",
        "a\u200b",
        None,
        5,
        b"abc",
        ["a"],
    ],
)
def test_invalid_ids_raise_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_id(value, "messages[3].id")
    assert info.value.field == "messages[3].id"
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "550e8400-e29b-41d4-a716-446655440000",
        "550E8400-E29B-41D4-A716-446655440000",
        "{550e8400-e29b-41d4-a716-446655440000}",
        "550e8400e29b41d4a716446655440000",
    ],
)
def test_device_ids_are_canonical_uuids(value: str) -> None:
    assert check_device_id(value) == "550e8400-e29b-41d4-a716-446655440000"


@pytest.mark.parametrize("value", ["", "nope", "550e8400-e29b-41d4-a716", 5, None, b"x"])
def test_bad_device_ids_raise_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_device_id(value, "filter.device_id")
    assert info.value.field == "filter.device_id"
