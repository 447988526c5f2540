"""export_sessions / import_sessions: JSONL round trips and merge strategies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from chatkeep import (
    FakeClock,
    MergeStrategy,
    SessionFilter,
    Store,
)

from .conftest import Stores
from .support import (
    Snapshot,
    batch,
    contents,
    filled,
    rejected,
    rich_store,
    snapshot,
    unchanged,
    user,
)

EVERYTHING = SessionFilter(include_expired=True)


async def exported(store: Store, flt: SessionFilter | None = EVERYTHING) -> list[str]:
    return [line async for line in store.export_sessions(flt)]


async def test_export_format(store: Store, fake_clock: FakeClock) -> None:
    await rich_store(store, fake_clock)
    lines = await exported(store)
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    header = json.loads(lines[0])
    assert header["format"] == "chatkeep-export"
    records = [json.loads(line) for line in lines[1:]]
    assert [r["session"]["id"] for r in records] == ["a", "b", "c"]
    assert [m["seq"] for m in records[0]["messages"]] == [3, 4]
    assert records[0]["session"]["last_seq"] == 5


async def test_round_trip_into_a_fresh_store(
    store: Store, stores: Stores, fake_clock: FakeClock
) -> None:
    await rich_store(store, fake_clock)
    before = await snapshot(store)
    lines = await exported(store)
    async with stores.open("restored") as fresh:
        report = await fresh.import_sessions(lines)
        assert (report.restored, report.skipped, report.failed, report.errors) == (3, 0, 0, [])
        assert report.dry_run is False
        assert await snapshot(fresh) == before
        assert (await fresh.get_session_lock("a")) == (await store.get_session_lock("a"))
        again = await fresh.append_messages("a", [user("retry", id="key-4"), user("six")])
        assert [(m.seq, m.content) for m in again] == [(4, "four"), (6, "six")]


async def test_a_restored_session_keeps_its_seq_counter(store: Store, stores: Stores) -> None:
    s = await filled(store, 5, max_messages=2)
    await store.clear_messages(s.id)
    lines = await exported(store)
    async with stores.open("restored") as fresh:
        await fresh.import_sessions(lines)
        assert [m.seq for m in await fresh.append_messages(s.id, batch("next"))] == [6]


async def test_import_accepts_an_async_stream(store: Store, stores: Stores) -> None:
    await filled(store, 2, id="streamed")
    lines = await exported(store)

    async def stream() -> AsyncIterator[str]:
        for line in lines:
            yield line

    async with stores.open("restored") as fresh:
        report = await fresh.import_sessions(stream())
        assert report.restored == 1
        assert contents(await fresh.get_messages("streamed")) == ["m1", "m2"]


async def test_export_with_a_filter(store: Store) -> None:
    await store.create_session(id="mine", owner="me")
    await store.create_session(id="theirs", owner="them")
    lines = await exported(store, SessionFilter(owner="me"))
    assert [json.loads(line)["session"]["id"] for line in lines[1:]] == ["mine"]


async def test_export_pages_through_many_sessions(store: Store, fake_clock: FakeClock) -> None:
    for i in range(250):
        await store.create_session(id=f"s{i:03d}")
        if i % 7 == 0:
            fake_clock.advance(timedelta(seconds=1))
    ids = [json.loads(line)["session"]["id"] for line in (await exported(store))[1:]]
    assert ids == [f"s{i:03d}" for i in range(250)]


async def conflicting(store: Store, clock: FakeClock) -> list[str]:
    """An export holding "old" and "new"; the store then changes both and adds "extra"."""
    await filled(store, 1, id="old", owner="exported")
    await filled(store, 1, id="new", owner="exported")
    lines = await exported(store)
    clock.advance(timedelta(minutes=1))
    await store.update_session("old", {"owner": "local"})
    await store.append_messages("old", batch("local message"))
    await store.create_session(id="extra")
    return lines


async def test_skip_existing_keeps_what_is_stored(store: Store, fake_clock: FakeClock) -> None:
    lines = await conflicting(store, fake_clock)
    await store.delete_session("new")
    report = await store.import_sessions(lines, strategy="skip_existing")
    assert (report.restored, report.skipped, report.failed) == (1, 1, 0)
    assert (await store.get_session("old")).owner == "local"
    assert contents(await store.get_messages("old")) == ["m1", "local message"]
    assert (await store.get_session("new")).owner == "exported"


async def test_overwrite_replaces_sessions_and_messages(
    store: Store, fake_clock: FakeClock
) -> None:
    lines = await conflicting(store, fake_clock)
    report = await store.import_sessions(lines, strategy=MergeStrategy.OVERWRITE)
    assert (report.restored, report.skipped, report.failed) == (2, 0, 0)
    old = await store.get_session("old")
    assert (old.owner, old.message_count, old.last_seq) == ("exported", 1, 1)
    assert contents(await store.get_messages("old")) == ["m1"]
    assert (await store.get_session("extra")).id == "extra"


async def test_update_newer_replaces_only_older_sessions(
    store: Store, fake_clock: FakeClock
) -> None:
    lines = await conflicting(store, fake_clock)
    records = [json.loads(line) for line in lines[1:]]
    newer = next(r for r in records if r["session"]["id"] == "new")
    newer["session"]["updated_at"] += 3_600_000_000
    newer["session"]["owner"] = "from the future"
    lines = [lines[0], *(json.dumps(r) + "\n" for r in records)]
    report = await store.import_sessions(lines, strategy="update_newer")
    assert (report.restored, report.skipped, report.failed) == (1, 1, 0)
    assert (await store.get_session("old")).owner == "local"
    assert (await store.get_session("new")).owner == "from the future"


async def test_dry_run_changes_nothing_but_counts(store: Store, fake_clock: FakeClock) -> None:
    lines = await conflicting(store, fake_clock)
    await store.delete_session("new")
    async with unchanged(store):
        report = await store.import_sessions([*lines, "{broken\n"], dry_run=True)
    assert (report.restored, report.skipped, report.failed) == (1, 1, 1)
    assert report.dry_run is True
    async with unchanged(store):
        report = await store.import_sessions(lines, strategy="overwrite", dry_run=True)
    assert (report.restored, report.skipped, report.failed) == (2, 0, 0)


BAD_LINES = {
    "not-json": "{oops",
    "not-an-object": "[1, 2]",
    "no-session": '{"messages": []}',
    "bad-id": None,
    "bad-role": None,
    "seq-order": None,
    "huge-window": None,
    "bad-version": '{"format": "chatkeep-export", "version": 99}',
}


def broken(good: str, kind: str) -> str:
    record = json.loads(good)
    if kind == "bad-id":
        record["session"]["id"] = "../../etc/passwd"
    elif kind == "bad-role":
        record["messages"][0]["role"] = "wizard"
    elif kind == "seq-order":
        record["messages"][1]["seq"] = record["messages"][0]["seq"]
    elif kind == "huge-window":
        record["session"]["max_messages"] = 0
    return json.dumps(record) + "\n"


@pytest.mark.parametrize("kind", BAD_LINES)
async def test_a_bad_line_fails_alone_with_its_number(
    store: Store, stores: Stores, kind: str
) -> None:
    for sid in ("first", "second", "third"):
        await filled(store, 2, id=sid)
    lines = await exported(store)
    bad = BAD_LINES[kind] or broken(lines[2], kind)
    lines[2] = bad if bad.endswith("\n") else bad + "\n"
    async with stores.open("restored") as fresh:
        report = await fresh.import_sessions(lines)
        assert (report.restored, report.failed) == (2, 1)
        assert len(report.errors) == 1
        assert report.errors[0].startswith("line 3: ")
        assert contents(await fresh.get_messages("first")) == ["m1", "m2"]
        assert contents(await fresh.get_messages("third")) == ["m1", "m2"]
        assert [s for s, _ in await snapshot(fresh) if s.id == "second"] == []


async def test_blank_lines_are_ignored(store: Store, stores: Stores) -> None:
    await filled(store, 1, id="only")
    lines = await exported(store)
    async with stores.open("restored") as fresh:
        report = await fresh.import_sessions(["\n", *lines, "   \n", ""])
        assert (report.restored, report.skipped, report.failed) == (1, 0, 0)


async def test_an_unknown_strategy_is_refused(store: Store) -> None:
    async with rejected(store, "strategy"):
        await store.import_sessions([], strategy="merge_somehow")


async def test_importing_nothing(store: Store) -> None:
    before: Snapshot = await snapshot(store)
    report = await store.import_sessions([])
    assert (report.restored, report.skipped, report.failed, report.errors) == (0, 0, 0, [])
    assert await snapshot(store) == before


async def test_a_dry_run_reports_what_the_real_run_does(store: Store, stores: Stores) -> None:
    await filled(store, 2, id="twice")
    await filled(store, 1, id="once")
    lines = await exported(store)
    doubled = [*lines, lines[1]]
    async with stores.open("restored") as fresh:
        dry = await fresh.import_sessions(doubled, dry_run=True)
        real = await fresh.import_sessions(doubled)
    assert (real.restored, real.skipped, real.failed) == (2, 1, 0)
    assert (dry.restored, dry.skipped, dry.failed) == (real.restored, real.skipped, real.failed)
