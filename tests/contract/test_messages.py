"""Appending, reading, popping and clearing messages; seq and idempotency keys."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatkeep import (
    FakeClock,
    NewMessage,
    Role,
    SessionNotFoundError,
    Store,
)

from .support import batch, contents, filled, seqs, unchanged, user


async def test_append_returns_the_stored_messages(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session()
    fake_clock.advance(timedelta(seconds=3))
    out = await store.append_messages(
        s.id,
        [
            NewMessage(role="user", content="hi", user_id="u1", metadata={"lang": "en"}),
            NewMessage(role=Role.ASSISTANT, content={"type": "text", "parts": ["a", 1, None]}),
            NewMessage(role="tool", content=[{"call": "f"}, 2]),
            NewMessage(role="system", content=""),
        ],
    )
    assert seqs(out) == [1, 2, 3, 4]
    assert [m.role for m in out] == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.SYSTEM]
    assert contents(out) == [
        "hi",
        {"type": "text", "parts": ["a", 1, None]},
        [{"call": "f"}, 2],
        "",
    ]
    assert out[0].user_id == "u1"
    assert out[0].metadata == {"lang": "en"}
    assert out[1].metadata == {}
    assert all(m.session_id == s.id and m.created_at == fake_clock.now() for m in out)
    assert len({m.id for m in out}) == 4
    assert await store.get_messages(s.id) == out
    after = await store.get_session(s.id)
    assert (after.message_count, after.last_seq) == (4, 4)
    assert after.last_activity_at == fake_clock.now()


async def test_a_single_message_may_be_given_without_a_list(store: Store) -> None:
    s = await store.create_session()
    out = await store.append_messages(s.id, user("solo"))
    assert contents(out) == ["solo"]


@pytest.mark.parametrize(
    "text", ["", "a\x00b", "line\nbreak\r\n", "emoji 🎉 and ĳ", "\u2028\u2029", '{"not": "json"}']
)
async def test_text_is_stored_exactly(store: Store, text: str) -> None:
    s = await store.create_session()
    await store.append_messages(s.id, user(text))
    assert contents(await store.get_messages(s.id)) == [text]


async def test_seq_grows_across_appends(store: Store) -> None:
    s = await store.create_session()
    assert seqs(await store.append_messages(s.id, batch("a", "b"))) == [1, 2]
    assert seqs(await store.append_messages(s.id, batch("c"))) == [3]
    assert seqs(await store.get_messages(s.id)) == [1, 2, 3]


async def test_seqs_are_per_session(store: Store) -> None:
    a = await filled(store, 3)
    b = await store.create_session()
    assert seqs(await store.append_messages(b.id, batch("x"))) == [1]
    assert seqs(await store.append_messages(a.id, batch("y"))) == [4]


async def test_an_empty_batch_changes_nothing(store: Store) -> None:
    s = await filled(store, 2)
    async with unchanged(store):
        assert await store.append_messages(s.id, []) == []


async def test_pop_removes_the_newest_and_its_seq_is_never_reused(store: Store) -> None:
    s = await filled(store, 3)
    popped = await store.pop_message(s.id)
    assert popped is not None
    assert (popped.seq, popped.content) == (3, "m3")
    assert seqs(await store.get_messages(s.id)) == [1, 2]
    after = await store.get_session(s.id)
    assert (after.message_count, after.last_seq) == (2, 3)
    assert after.version > s.version
    assert seqs(await store.append_messages(s.id, batch("n"))) == [4]


async def test_pop_on_an_empty_session_returns_none(store: Store) -> None:
    s = await store.create_session()
    async with unchanged(store):
        assert await store.pop_message(s.id) is None


async def test_clear_removes_everything_and_seqs_go_on(store: Store) -> None:
    s = await filled(store, 4)
    assert await store.clear_messages(s.id) == 4
    assert await store.get_messages(s.id) == []
    after = await store.get_session(s.id)
    assert (after.message_count, after.last_seq) == (0, 4)
    assert await store.clear_messages(s.id) == 0
    assert seqs(await store.append_messages(s.id, batch("x"))) == [5]


async def test_append_to_a_missing_session(store: Store) -> None:
    async with unchanged(store):
        with pytest.raises(SessionNotFoundError):
            await store.append_messages("ghost", batch("x"))
    for call in (store.pop_message, store.clear_messages):
        with pytest.raises(SessionNotFoundError):
            await call("ghost")


async def test_an_id_appended_again_is_a_no_op(store: Store) -> None:
    s = await store.create_session()
    first = await store.append_messages(s.id, [user("hello", id="k1")])
    before = await store.get_session(s.id)
    again = await store.append_messages(s.id, [user("different text", id="k1")])
    assert again == first
    assert again[0].content == "hello"
    after = await store.get_session(s.id)
    assert (after.message_count, after.last_seq) == (1, 1)
    assert after == before
    assert contents(await store.get_messages(s.id)) == ["hello"]


async def test_a_batch_mixing_stored_and_new_ids(store: Store) -> None:
    s = await store.create_session()
    await store.append_messages(s.id, [user("one", id="k1")])
    out = await store.append_messages(
        s.id, [user("two", id="k2"), user("again", id="k1"), user("three")]
    )
    assert [(m.seq, m.id, m.content) for m in out[:2]] == [(2, "k2", "two"), (1, "k1", "one")]
    assert out[2].seq == 3
    assert contents(await store.get_messages(s.id)) == ["one", "two", "three"]


async def test_duplicate_ids_inside_one_batch_are_stored_once(store: Store) -> None:
    s = await store.create_session()
    out = await store.append_messages(s.id, [user("a", id="dup"), user("b"), user("c", id="dup")])
    assert seqs(out) == [1, 2, 1]
    assert out[2] == out[0]
    assert contents(await store.get_messages(s.id)) == ["a", "b"]
    assert (await store.get_session(s.id)).message_count == 2


async def test_message_ids_are_scoped_to_their_session(store: Store) -> None:
    a = await store.create_session()
    b = await store.create_session()
    in_a = await store.append_messages(a.id, [user("for a", id="same")])
    in_b = await store.append_messages(b.id, [user("for b", id="same")])
    assert (in_a[0].content, in_b[0].content) == ("for a", "for b")
    assert contents(await store.get_messages(b.id)) == ["for b"]


async def test_an_id_is_reusable_after_pop(store: Store) -> None:
    s = await store.create_session()
    await store.append_messages(s.id, [user("first", id="k")])
    await store.pop_message(s.id)
    out = await store.append_messages(s.id, [user("second", id="k")])
    assert (out[0].seq, out[0].content) == (2, "second")


async def test_messages_read_back_are_read_only(store: Store) -> None:
    s = await store.create_session(metadata={"k": [1]})
    await store.append_messages(
        s.id, [NewMessage(role="tool", content={"parts": [1]}, metadata={"m": [1]})]
    )
    read = (await store.get_messages(s.id))[0]
    with pytest.raises(TypeError, match="read-only"):
        read.content["parts"].append(2)  # type: ignore[call-overload, index, union-attr]
    with pytest.raises(TypeError, match="read-only"):
        read.metadata["m"].append(2)  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="read-only"):
        read.metadata["new"] = 1
    with pytest.raises(TypeError, match="read-only"):
        (await store.get_session(s.id)).metadata["k"].append(2)  # type: ignore[union-attr]
    changed = dict(read.metadata) | {"new": 1}
    assert changed == {"m": [1], "new": 1}
    stored = (await store.get_messages(s.id))[0]
    assert (stored.content, stored.metadata) == ({"parts": [1]}, {"m": [1]})
    assert (await store.get_session(s.id)).metadata == {"k": [1]}


async def test_a_given_message_is_copied(store: Store) -> None:
    s = await store.create_session()
    content: dict[str, list[int]] = {"parts": [1]}
    meta: dict[str, list[int]] = {"m": [1]}
    await store.append_messages(s.id, [NewMessage(role="tool", content=content, metadata=meta)])  # type: ignore[arg-type]
    content["parts"].append(2)
    meta["m"].append(2)
    stored = (await store.get_messages(s.id))[0]
    assert (stored.content, stored.metadata) == ({"parts": [1]}, {"m": [1]})


async def test_append_tells_which_messages_are_new(store: Store) -> None:
    s = await store.create_session()
    first = await store.append(s.id, [user("a", id="k1")])
    assert [m.content for m in first.added] == ["a"]
    assert (first.session.last_seq, first.session.message_count) == (1, 1)
    again = await store.append(s.id, [user("a", id="k1"), user("b", id="k2")])
    assert [m.id for m in again.messages] == ["k1", "k2"]
    assert [m.id for m in again.added] == ["k2"]
    assert again.session == await store.get_session(s.id)
    repeat = await store.append(s.id, [user("b", id="k2")])
    assert repeat.added == []
    assert repeat.session.version == again.session.version
