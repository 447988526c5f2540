"""The rolling window, and reading messages by position."""

from __future__ import annotations

import pytest

from chatkeep import Store

from .support import batch, contents, filled, rejected, seqs


async def test_the_window_keeps_the_newest(store: Store) -> None:
    s = await store.create_session(max_messages=3)
    for i in range(1, 6):
        await store.append_messages(s.id, batch(f"m{i}"))
    assert contents(await store.get_messages(s.id)) == ["m3", "m4", "m5"]
    after = await store.get_session(s.id)
    assert (after.message_count, after.last_seq) == (3, 5)


async def test_a_batch_larger_than_the_window(store: Store) -> None:
    s = await filled(store, 2, max_messages=3)
    out = await store.append_messages(s.id, batch("a", "b", "c", "d", "e"))
    assert seqs(out) == [3, 4, 5, 6, 7]
    assert seqs(await store.get_messages(s.id)) == [5, 6, 7]
    assert (await store.get_session(s.id)).message_count == 3


async def test_a_window_of_one(store: Store) -> None:
    s = await filled(store, 4, max_messages=1)
    assert contents(await store.get_messages(s.id)) == ["m4"]
    assert seqs(await store.append_messages(s.id, batch("x"))) == [5]
    assert contents(await store.get_messages(s.id)) == ["x"]


async def test_a_trimmed_seq_is_never_reused(store: Store) -> None:
    s = await filled(store, 5, max_messages=2)
    await store.clear_messages(s.id)
    assert seqs(await store.append_messages(s.id, batch("x"))) == [6]


async def test_lowering_max_messages_trims_at_once(store: Store) -> None:
    s = await filled(store, 6)
    u = await store.update_session(s.id, {"max_messages": 2})
    assert (u.max_messages, u.message_count, u.last_seq) == (2, 2, 6)
    assert seqs(await store.get_messages(s.id)) == [5, 6]
    assert seqs(await store.append_messages(s.id, batch("x"))) == [7]
    assert seqs(await store.get_messages(s.id)) == [6, 7]


async def test_raising_max_messages_keeps_everything(store: Store) -> None:
    s = await filled(store, 3, max_messages=3)
    await store.update_session(s.id, {"max_messages": 10})
    await store.append_messages(s.id, batch("a", "b"))
    assert seqs(await store.get_messages(s.id)) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ({"last": 3}, [8, 9, 10]),
        ({"last": 50}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ({"limit": 3}, [1, 2, 3]),
        ({"after_seq": 7}, [8, 9, 10]),
        ({"after_seq": 0}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ({"after_seq": 10}, []),
        ({"after_seq": 99}, []),
        ({"before_seq": 4}, [1, 2, 3]),
        ({"before_seq": 1}, []),
        ({"before_seq": 0}, []),
        ({"after_seq": 2, "limit": 3}, [3, 4, 5]),
        ({"after_seq": 2, "last": 3}, [8, 9, 10]),
        ({"before_seq": 8, "last": 2}, [6, 7]),
        ({"before_seq": 8, "limit": 2}, [1, 2]),
        ({"after_seq": 3, "before_seq": 7}, [4, 5, 6]),
        ({"after_seq": 3, "before_seq": 7, "last": 2}, [5, 6]),
        ({"after_seq": 3, "before_seq": 7, "limit": 2}, [4, 5]),
        ({"after_seq": 6, "before_seq": 4}, []),
    ],
)
async def test_reading_a_range(store: Store, kwargs: dict[str, int], expected: list[int]) -> None:
    s = await filled(store, 10)
    assert seqs(await store.get_messages(s.id, **kwargs)) == expected


async def test_reading_a_range_after_trimming(store: Store) -> None:
    s = await filled(store, 10, max_messages=4)
    assert seqs(await store.get_messages(s.id, after_seq=2)) == [7, 8, 9, 10]
    assert seqs(await store.get_messages(s.id, before_seq=9, limit=1)) == [7]
    assert seqs(await store.get_messages(s.id, last=2)) == [9, 10]


async def test_reading_an_empty_session(store: Store) -> None:
    s = await store.create_session()
    assert await store.get_messages(s.id, last=5) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"last": 0}, "last"),
        ({"last": -1}, "last"),
        ({"last": "3"}, "last"),
        ({"last": True}, "last"),
        ({"limit": 0}, "limit"),
        ({"limit": 2.5}, "limit"),
        ({"after_seq": -1}, "after_seq"),
        ({"after_seq": "1"}, "after_seq"),
        ({"before_seq": -5}, "before_seq"),
        ({"before_seq": None, "after_seq": 1.0}, "after_seq"),
        ({"last": 2, "limit": 2}, "last"),
    ],
)
async def test_bad_read_arguments(store: Store, kwargs: dict[str, object], field: str) -> None:
    s = await filled(store, 3)
    async with rejected(store, field):
        await store.get_messages(s.id, **kwargs)  # type: ignore[arg-type]
