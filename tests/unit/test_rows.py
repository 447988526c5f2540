from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatkeep.stores.rows import index_words, token

MARK = "\u01c2"


@pytest.mark.parametrize("word", ["a", "release", "2030", "v2", "0x1f"])
def test_a_word_of_lowercase_ascii_letters_and_digits_is_its_own_token(word: str) -> None:
    assert token(word) == word


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("A", MARK + "41"),
        ("aB", MARK + "6142"),
        ("é", MARK + "c3a9"),
        ("a_b", MARK + "615f62"),
        ("½", MARK + "c2bd"),
        ("", MARK),
        ("\ud800", MARK + "eda080"),
    ],
)
def test_any_other_word_is_a_mark_and_its_utf8_in_hex(word: str, expected: str) -> None:
    assert token(word) == expected


@given(st.text(st.characters(max_codepoint=127)) | st.text())
def test_tokens_are_plain_exactly_for_lowercase_ascii_letters_and_digits(word: str) -> None:
    plain = re.fullmatch("[0-9a-z]+", word) is not None
    assert (token(word) == word) is plain
    assert token(word).startswith(MARK) is not plain


def test_index_words_are_the_words_of_every_value() -> None:
    assert index_words("Hello there", {"Note": ["hello", 7]}, None) == {
        "hello",
        "there",
        "note",
        "7",
    }
