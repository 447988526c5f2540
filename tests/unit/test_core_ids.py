from __future__ import annotations

import re

import pytest

from chatkeep.core.ids import check_device_id, check_id, new_id
from chatkeep.errors import InvalidInputError

ULID_TEXT = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def test_new_ids_are_unique_ulids_that_pass_the_id_rule() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:50]:
        assert ULID_TEXT.fullmatch(value)
        assert check_id(value, "id") == value


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
