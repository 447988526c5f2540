"""Bad input anywhere: InvalidInputError naming the field, and nothing changed."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from chatkeep import Limits, NewMessage, SessionUpdate, Store

from .conftest import Stores
from .support import rejected, user

LIMITS = Limits(max_content_bytes=64, max_metadata_bytes=128, max_batch=4, max_tags=3)
Call = Callable[[Store], Awaitable[object]]


@pytest.fixture
async def limited(stores: Stores) -> AsyncIterator[Store]:
    """A store with small limits, holding session "s" with two messages."""
    async with stores.open("limited", limits=LIMITS) as store:
        await store.create_session(id="s", metadata={"keep": "me"}, tags=["t"])
        await store.append_messages("s", [user("one", id="k1"), user("two")])
        yield store


def cases(table: dict[str, tuple[Call, str]]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(("call", "field"), table.values(), ids=table.keys())


def create(**fields: object) -> Call:
    return lambda store: store.create_session(**fields)  # type: ignore[arg-type]


NOT_JSON: dict[str, object] = {
    "set": {"a": {1, 2}},
    "datetime": {"when": datetime(2030, 1, 1, tzinfo=UTC)},
    "nan": {"x": math.nan},
    "inf": {"x": [math.inf]},
    "int-key": {1: "x"},
    "nested-int-key": {"a": {"b": {2: "x"}}},
    "bytes": {"b": b"x"},
    "object": {"o": object()},
    "surrogate": {"s": "\ud800"},
    "too-big": {"big": "x" * 200},
    "a-list": [1, 2],
    "a-string": "meta",
}

CREATE: dict[str, tuple[Call, str]] = {
    "id-slash": (create(id="a/b"), "id"),
    "id-dotdot": (create(id=".."), "id"),
    "id-empty": (create(id=""), "id"),
    "id-long": (create(id="x" * 129), "id"),
    "id-int": (create(id=5), "id"),
    "owner-int": (create(owner=5), "owner"),
    "owner-empty": (create(owner=""), "owner"),
    "owner-control": (create(owner="a\x00b"), "owner"),
    "owner-surrogate": (create(owner="a\udc00"), "owner"),
    "device": (create(device_id="not-a-uuid"), "device_id"),
    "persistence": (create(persistence="cloud"), "persistence"),
    "ttl-negative": (create(ttl=-1), "ttl"),
    "ttl-zero": (create(ttl=timedelta(0)), "ttl"),
    "ttl-text": (create(ttl="1h"), "ttl"),
    "ttl-bool": (create(ttl=True), "ttl"),
    "ttl-nan": (create(ttl=math.nan), "ttl"),
    "ttl-overflow": (create(ttl=1e300), "ttl"),
    "ttl-beyond-calendar": (create(ttl=timedelta(days=999_999_999)), "ttl"),
    "max-zero": (create(max_messages=0), "max_messages"),
    "max-text": (create(max_messages="5"), "max_messages"),
    "max-bool": (create(max_messages=True), "max_messages"),
    "max-huge": (create(max_messages=10**9), "max_messages"),
    "tags-string": (create(tags="abc"), "tags"),
    "tags-int": (create(tags=[1]), "tags"),
    "tags-empty": (create(tags=[""]), "tags"),
    "tags-unhashable": (create(tags=[["a"]]), "tags"),
    "tags-too-many": (create(tags=["a", "b", "c", "d"]), "tags"),
    **{f"metadata-{k}": (create(metadata=v), "metadata") for k, v in NOT_JSON.items()},
}


@cases(CREATE)
async def test_create(limited: Store, call: Call, field: str) -> None:
    async with rejected(limited, field):
        await call(limited)


def append(*messages: object) -> Call:
    return lambda store: store.append_messages("s", list(messages))  # type: ignore[arg-type]


OK = user("fine")
APPEND: dict[str, tuple[Call, str]] = {
    "role": (append(OK, NewMessage(role="robot", content="x")), "messages[1].role"),
    "role-none": (append(NewMessage(role=None, content="x")), "messages[0].role"),  # type: ignore[arg-type]
    "content-int": (append(NewMessage(role="user", content=5)), "messages[0].content"),  # type: ignore[arg-type]
    "content-none": (append(NewMessage(role="user", content=None)), "messages[0].content"),  # type: ignore[arg-type]
    "content-over": (append(OK, user("x" * 65)), "messages[1].content"),
    "content-over-bytes": (append(user("é" * 33)), "messages[0].content"),
    "content-json-over": (
        append(NewMessage(role="tool", content={"x": "y" * 60})),
        "messages[0].content",
    ),
    "content-set": (
        append(NewMessage(role="tool", content={"x": {1}})),  # type: ignore[dict-item]
        "messages[0].content",
    ),
    "content-nan": (append(NewMessage(role="tool", content=[math.nan])), "messages[0].content"),
    "content-surrogate": (append(user("bad \ud800")), "messages[0].content"),
    "message-id": (append(OK, user("x", id="../k")), "messages[1].id"),
    "message-id-int": (append(NewMessage(role="user", content="x", id=3)), "messages[0].id"),  # type: ignore[arg-type]
    "user-id": (append(NewMessage(role="user", content="x", user_id="")), "messages[0].user_id"),
    "not-a-message": (append(OK, {"role": "user", "content": "x"}), "messages[1]"),
    "batch-too-big": (append(*[user(str(i)) for i in range(5)]), "messages"),
    "a-string": (lambda store: store.append_messages("s", "hello"), "messages"),  # type: ignore[arg-type]
    "a-dict": (lambda store: store.append_messages("s", {"x": 1}), "messages"),  # type: ignore[arg-type]
    **{
        f"metadata-{k}": (
            append(OK, NewMessage(role="user", content="x", metadata=v)),  # type: ignore[arg-type]
            "messages[1].metadata",
        )
        for k, v in NOT_JSON.items()
    },
}


@cases(APPEND)
async def test_append(limited: Store, call: Call, field: str) -> None:
    async with rejected(limited, field):
        await call(limited)


def update(expected_version: object = None, **changes: object) -> Call:
    return lambda store: store.update_session("s", changes, expected_version)  # type: ignore[arg-type]


UPDATE: dict[str, tuple[Call, str]] = {
    "owner": (update(owner=5), "owner"),
    "device": (update(device_id="nope"), "device_id"),
    "ttl": (update(ttl=0), "ttl"),
    "ttl-beyond-calendar": (update(ttl=timedelta(days=999_999_999)), "ttl"),
    "max": (update(max_messages=0), "max_messages"),
    "persistence": (update(persistence="cloud"), "persistence"),
    "tags": (update(tags=5), "tags"),
    "add-tags": (update(add_tags=[1]), "add_tags"),
    "add-too-many": (update(add_tags=["b", "c", "d"]), "tags"),
    "remove-tags": (update(remove_tags="t"), "remove_tags"),
    "metadata": (update(metadata={"x": {1}}), "metadata"),
    "merge": (update(merge_metadata={"x": math.nan}), "merge_metadata"),
    "merge-too-big": (update(merge_metadata={"big": "x" * 110}), "metadata"),
    "unknown": (update(owner="x", nope=1), "changes"),
    "not-a-mapping": (lambda store: store.update_session("s", [("owner", "x")]), "changes"),  # type: ignore[arg-type]
    "version-text": (update("1", owner="x"), "expected_version"),
    "version-zero": (update(0, owner="x"), "expected_version"),
    "later-field-bad": (
        lambda store: store.update_session("s", SessionUpdate(owner="ok", max_messages=-1)),
        "max_messages",
    ),
}


@cases(UPDATE)
async def test_update(limited: Store, call: Call, field: str) -> None:
    async with rejected(limited, field):
        await call(limited)


SESSION_ID: dict[str, Call] = {
    "get_session": lambda s: s.get_session("../s"),
    "update_session": lambda s: s.update_session("a b", {"owner": "x"}),
    "delete_session": lambda s: s.delete_session("/etc/passwd"),
    "append_messages": lambda s: s.append_messages("", [user("x")]),
    "get_messages": lambda s: s.get_messages("s/../s"),
    "pop_message": lambda s: s.pop_message(".s"),
    "clear_messages": lambda s: s.clear_messages("s\n"),
    "touch": lambda s: s.touch("x" * 200),
    "set_expiration": lambda s: s.set_expiration("é", None),
    "extend_expiration": lambda s: s.extend_expiration("..", timedelta(1)),
    "get_session_lock": lambda s: s.get_session_lock("a\\b"),
    "set_session_lock": lambda s: s.set_session_lock("a*b", "agent"),
    "clear_session_lock": lambda s: s.clear_session_lock("?"),
    "not-a-string": lambda s: s.get_session(5),  # type: ignore[arg-type]
    "none": lambda s: s.get_session(None),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("call", SESSION_ID.values(), ids=SESSION_ID.keys())
async def test_a_bad_session_id(limited: Store, call: Call) -> None:
    async with rejected(limited, "session_id"):
        await call(limited)


async def test_content_at_the_limit_is_accepted(limited: Store) -> None:
    out = await limited.append_messages("s", [user("x" * 64), user("é" * 32)])
    assert [m.seq for m in out] == [3, 4]


@pytest.mark.parametrize("field", ["after_seq", "before_seq", "last", "limit"])
async def test_a_seq_or_count_beyond_64_bits_is_refused(store: Store, field: str) -> None:
    s = await store.create_session()
    async with rejected(store, field):
        await store.get_messages(s.id, **{field: 2**70})
