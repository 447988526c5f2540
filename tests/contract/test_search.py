"""search_sessions: every word in one message (or in the session's metadata)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatkeep import FakeClock, NewMessage, SearchHit, Store

from .support import batch, contents, ids_of, rejected, seqs, user


def hit_ids(hits: list[SearchHit]) -> list[str]:
    return ids_of([h.session for h in hits])


async def corpus(store: Store, clock: FakeClock) -> None:
    """Three sessions; s3 is the most recently active, s1 the least."""
    await store.create_session(id="s1", owner="alice")
    await store.append_messages(
        "s1",
        [
            user("The quick brown fox"),
            NewMessage(
                role="assistant",
                content="jumps over the lazy dog",
                metadata={"topic": "Zebra crossing", "order": 12345},
            ),
            user("this OR that, snake_case and Straße near the café"),
        ],
    )
    clock.advance(timedelta(seconds=1))
    await store.create_session(id="s2", owner="bob", metadata={"project": "Apollo moon"})
    await store.append_messages("s2", batch("nothing to see here"))
    clock.advance(timedelta(seconds=1))
    await store.create_session(id="s3", owner="alice")
    await store.append_messages(
        "s3", [NewMessage(role="tool", content={"tool": "weather", "args": {"city": "Paris"}})]
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("quick", ["s1"]),
        ("QUICK Fox", ["s1"]),
        ("fox quick fox", ["s1"]),
        ("quick lazy", []),
        ("zebra", ["s1"]),
        ("zebra LAZY dog", ["s1"]),
        ("zebra quick", []),
        ("topic", ["s1"]),
        ("12345", ["s1"]),
        ("1234", []),
        ("apollo", ["s2"]),
        ("apollo moon", ["s2"]),
        ("apollo nothing", []),
        ("paris", ["s3"]),
        ("weather city", ["s3"]),
        ("qui", []),
        ("foxes", []),
        ("snake", ["s1"]),
        ("snake_case", ["s1"]),
        ("STRASSE", ["s1"]),
        ("CAFÉ", ["s1"]),
        ("cafe", []),
        ("here", ["s2"]),
        ("the", ["s1"]),
    ],
)
async def test_which_sessions_match(
    store: Store, fake_clock: FakeClock, query: str, expected: list[str]
) -> None:
    await corpus(store, fake_clock)
    assert hit_ids(await store.search_sessions(query)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"quick', ["s1"]),
        ('quick"', ["s1"]),
        ('"quick brown"', ["s1"]),
        ("quick*", ["s1"]),
        ("qui*", []),
        ("NEAR(quick fox)", []),
        ("NEAR(", ["s1"]),
        ("quick OR fox", []),
        ("this OR that", ["s1"]),
        ("quick AND fox", []),
        ("quick NOT fox", []),
        ("-quick", ["s1"]),
        ("quick -fox", ["s1"]),
        ("^quick", ["s1"]),
        ("fox)", ["s1"]),
        ("quick'", ["s1"]),
        ("content:quick", []),
        ("{quick}", ["s1"]),
        ("quick; DROP TABLE messages; --", []),
        ("%quick%", ["s1"]),
        ("quick\x00fox", ["s1"]),
    ],
)
async def test_query_syntax_is_never_interpreted(
    store: Store, fake_clock: FakeClock, query: str, expected: list[str]
) -> None:
    await corpus(store, fake_clock)
    assert hit_ids(await store.search_sessions(query)) == expected


@pytest.mark.parametrize("query", ['"', "*", "()", "-", "   ", "", "_", "--", '"*"', "^"])
async def test_a_query_without_words_is_refused(store: Store, query: str) -> None:
    await store.create_session()
    async with rejected(store, "query"):
        await store.search_sessions(query)


@pytest.mark.parametrize("query", [None, 5, ["quick"], b"quick"])
async def test_a_query_that_is_not_text_is_refused(store: Store, query: object) -> None:
    async with rejected(store, "query"):
        await store.search_sessions(query)  # type: ignore[arg-type]


async def test_hits_list_up_to_three_matches_newest_first(store: Store) -> None:
    s = await store.create_session()
    await store.append_messages(s.id, batch("echo 1", "silence", "echo 3", "echo 4", "echo 5"))
    (hit,) = await store.search_sessions("echo")
    assert hit.session == await store.get_session(s.id)
    assert seqs(hit.messages) == [5, 4, 3]
    assert contents(hit.messages) == ["echo 5", "echo 4", "echo 3"]
    assert hit.messages == list(reversed(await store.get_messages(s.id, after_seq=2)))


async def test_a_metadata_hit_lists_no_messages(store: Store, fake_clock: FakeClock) -> None:
    await corpus(store, fake_clock)
    (hit,) = await store.search_sessions("apollo")
    assert hit.messages == []


async def test_hits_are_most_recently_active_first(store: Store, fake_clock: FakeClock) -> None:
    for sid in ("a", "b", "c", "d"):
        await store.create_session(id=sid)
    for sid in ("c", "a", "d"):
        await store.append_messages(sid, batch("common word"))
        fake_clock.advance(timedelta(seconds=1))
    await store.append_messages("b", batch("common"))
    assert hit_ids(await store.search_sessions("common")) == ["b", "d", "a", "c"]
    fake_clock.advance(timedelta(seconds=1))
    await store.touch("c")
    assert hit_ids(await store.search_sessions("common")) == ["c", "b", "d", "a"]


async def test_ties_in_activity_are_broken_by_id_descending(store: Store) -> None:
    for sid in ("m", "z", "a"):
        await store.create_session(id=sid)
        await store.append_messages(sid, batch("tie"))
    assert hit_ids(await store.search_sessions("tie")) == ["z", "m", "a"]


async def test_limit(store: Store) -> None:
    for i in range(5):
        s = await store.create_session(id=f"l{i}")
        await store.append_messages(s.id, batch("many"))
    assert len(await store.search_sessions("many", limit=2)) == 2
    assert len(await store.search_sessions("many", limit=1000)) == 5
    for bad in (0, -1, 1001, "2"):
        async with rejected(store, "limit"):
            await store.search_sessions("many", limit=bad)  # type: ignore[arg-type]


async def test_owner_filter(store: Store, fake_clock: FakeClock) -> None:
    await corpus(store, fake_clock)
    assert hit_ids(await store.search_sessions("quick", owner="alice")) == ["s1"]
    assert hit_ids(await store.search_sessions("quick", owner="bob")) == []
    assert hit_ids(await store.search_sessions("apollo", owner="bob")) == ["s2"]
    assert hit_ids(await store.search_sessions("apollo", owner="Bob")) == []


async def test_expired_sessions_are_left_out(store: Store, fake_clock: FakeClock) -> None:
    await store.create_session(id="old", ttl=60)
    await store.append_messages("old", batch("findme"))
    await store.create_session(id="new", ttl=None)
    await store.append_messages("new", batch("findme"))
    fake_clock.advance(timedelta(seconds=61))
    assert hit_ids(await store.search_sessions("findme")) == ["new"]
    assert hit_ids(await store.search_sessions("findme", include_expired=True)) == ["old", "new"]


async def test_search_follows_changes(store: Store) -> None:
    s = await store.create_session(id="live", max_messages=2)
    await store.append_messages(s.id, batch("alpha"))
    assert hit_ids(await store.search_sessions("alpha")) == ["live"]
    await store.append_messages(s.id, batch("beta", "gamma"))
    assert hit_ids(await store.search_sessions("alpha")) == []
    await store.pop_message(s.id)
    assert hit_ids(await store.search_sessions("gamma")) == []
    await store.clear_messages(s.id)
    assert hit_ids(await store.search_sessions("beta")) == []
    await store.update_session(s.id, {"metadata": {"label": "delta"}})
    assert hit_ids(await store.search_sessions("delta")) == ["live"]
    await store.update_session(s.id, {"metadata": {}})
    assert hit_ids(await store.search_sessions("delta")) == []
    await store.append_messages(s.id, batch("epsilon"))
    await store.delete_session(s.id)
    assert await store.search_sessions("epsilon") == []
