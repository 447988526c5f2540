"""Applying outbox changes to a durable copy: idempotent under repeated and reordered
delivery, and a change's encoded form (no server needed: the copy is an in-memory store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

import chatkeep
from chatkeep import CorruptDataError, FakeClock, Message, NewMessage, Session, Store
from chatkeep.stores import ops
from chatkeep.stores.outbox import Change, Verdict, change_of, coalesce, verdict
from chatkeep.stores.surface import StoreSurface
from chatkeep.stores.sync_worker import BACKOFF_BASE, BACKOFF_CAP, backoff


@pytest.fixture
async def copy(fake_clock: FakeClock) -> AsyncIterator[Store]:
    async with chatkeep.open_store("memory://", clock=fake_clock) as store:
        yield store


async def apply(store: Store, *changes: Change) -> list[Verdict]:
    assert isinstance(store, StoreSurface)
    async with store.transaction() as tx:
        return [await tx._call(ops.apply_change, c, write=True) for c in changes]


async def history(store: Store, session_id: str) -> list[tuple[int, object]]:
    return [(m.seq, m.content) for m in await store.get_messages(session_id)]


def created(session: Session, *added: Message) -> Change:
    change = change_of(session.id, None, session, whole=True, added=added)
    assert change is not None
    return change


async def source_changes(source: Store, texts: list[str]) -> tuple[Session, list[Change]]:
    """A session built in ``source``, and the change each write made, in order."""
    session = await source.create_session(max_messages=3)
    changes = [created(session)]
    for text in texts:
        before = await source.get_session(session.id)
        done = await source.append(session.id, NewMessage(role="user", content=text))
        stored = await source.get_messages(session.id)
        floor = min(m.seq for m in stored) - 1
        change = change_of(
            session.id, before, done.session, whole=False, added=done.added, floor=floor
        )
        assert change is not None
        changes.append(change)
    return session, changes


async def test_changes_applied_twice_are_applied_once(copy: Store, fake_clock: FakeClock) -> None:
    async with chatkeep.open_store("memory://", clock=fake_clock) as source:
        session, changes = await source_changes(source, ["a", "b", "c", "d"])
        expected = await history(source, session.id)
    assert await apply(copy, *changes) == [Verdict.APPLY] * 5
    assert await apply(copy, *changes) == [Verdict.SKIP] * 5
    assert await history(copy, session.id) == expected == [(2, "b"), (3, "c"), (4, "d")]
    assert (await copy.get_session(session.id)).version == changes[-1].session.version  # type: ignore[union-attr]


async def test_a_change_waits_for_the_one_before_it(copy: Store, fake_clock: FakeClock) -> None:
    async with chatkeep.open_store("memory://", clock=fake_clock) as source:
        session, changes = await source_changes(source, ["a", "b"])
    first, second, third = changes
    assert await apply(copy, third) == [Verdict.WAIT]  # nothing to apply it to yet
    assert await apply(copy, first, third) == [Verdict.APPLY, Verdict.WAIT]
    assert await apply(copy, second, third) == [Verdict.APPLY, Verdict.APPLY]
    assert await history(copy, session.id) == [(1, "a"), (2, "b")]


async def test_a_deletion_and_a_recreated_session(copy: Store, fake_clock: FakeClock) -> None:
    async with chatkeep.open_store("memory://", clock=fake_clock) as source:
        session, changes = await source_changes(source, ["old"])
        last = await source.get_session(session.id)
        await source.delete_session(session.id)
        deletion = change_of(session.id, last, None, whole=False)
        fake_clock.advance(timedelta(seconds=1))
        await source.create_session(id=session.id)
        done = await source.append(session.id, NewMessage(role="user", content="new"))
    recreated = change_of(session.id, None, done.session, whole=True, added=done.added)
    assert deletion is not None
    assert deletion.session is None
    assert recreated is not None
    assert await apply(copy, *changes, deletion) == [Verdict.APPLY] * 3
    assert await apply(copy, deletion) == [Verdict.SKIP]
    assert await apply(copy, recreated) == [Verdict.APPLY]
    assert await history(copy, session.id) == [(1, "new")]
    assert (await copy.get_session(session.id)).created_at == done.session.created_at
    # an older life of the session, delivered late, changes nothing
    assert await apply(copy, changes[0], changes[1]) == [Verdict.SKIP, Verdict.SKIP]
    assert await history(copy, session.id) == [(1, "new")]


async def test_removals_are_applied(copy: Store, fake_clock: FakeClock) -> None:
    async with chatkeep.open_store("memory://", clock=fake_clock) as source:
        session, changes = await source_changes(source, ["a", "b", "c"])
        before = await source.get_session(session.id)
        await source.pop_message(session.id)
        after_pop = await source.get_session(session.id)
        pop = change_of(session.id, before, after_pop, whole=False, gone=[3])
        await source.clear_messages(session.id)
        cleared = change_of(
            session.id, after_pop, await source.get_session(session.id), whole=False, wiped=True
        )
    assert pop is not None
    assert cleared is not None
    await apply(copy, *changes, pop)
    assert await history(copy, session.id) == [(1, "a"), (2, "b")]
    await apply(copy, cleared)
    assert await history(copy, session.id) == []
    assert (await copy.get_session(session.id)).message_count == 0


async def test_a_batch_applies_merged_changes_and_falls_back_change_by_change(
    copy: Store, fake_clock: FakeClock
) -> None:
    async with chatkeep.open_store("memory://", clock=fake_clock) as source:
        session, changes = await source_changes(source, ["a", "b", "c"])
        expected = await history(source, session.id)
    assert isinstance(copy, StoreSurface)
    first, *rest = changes
    whole = coalesce(changes)
    assert len(whole) == 1, "one session's successive changes merge into one"
    batch = [(change, [changes[i] for i in members]) for change, members in whole]
    assert await copy._call(ops.apply_changes, batch, write=True) == [[Verdict.APPLY] * 4]
    assert await history(copy, session.id) == expected
    assert await copy._call(ops.apply_changes, batch, write=True) == [[Verdict.SKIP] * 4]
    # A copy that holds the first append already holds the merged appends in part: they
    # are applied one by one.
    appends = coalesce(rest)
    assert len(appends) == 1
    batch = [(change, [rest[i] for i in members]) for change, members in appends]
    async with chatkeep.open_store("memory://", clock=fake_clock) as partial:
        assert await apply(partial, first, rest[0]) == [Verdict.APPLY, Verdict.APPLY]
        assert isinstance(partial, StoreSurface)
        got = await partial._call(ops.apply_changes, batch, write=True)
        assert got == [[Verdict.SKIP, Verdict.APPLY, Verdict.APPLY]]
        assert await history(partial, session.id) == expected


def test_the_encoded_form_round_trips(fake_clock: FakeClock) -> None:
    change = Change("s1", None, (fake_clock.now(), 7))
    assert Change.decode("s1", change.encode()) == change
    assert verdict(None, change) is Verdict.SKIP


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"f": 99}',
        b'{"f": 1, "s": null, "b": null, "a": [], "w": false, "l": 0, "g": []}',
    ],
)
def test_a_bad_encoded_change_is_corrupt_data(raw: bytes) -> None:
    with pytest.raises(CorruptDataError, match="outbox entry of session 's1'"):
        Change.decode("s1", raw)


def test_retries_back_off_exponentially_with_jitter() -> None:
    for failures in range(1, 12):
        base = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))
        delays = {backoff(failures) for _ in range(50)}
        assert all(0.5 * base <= d <= 1.5 * base for d in delays), failures
        assert len(delays) > 1, "no jitter"
    assert max(backoff(1000) for _ in range(50)) <= 1.5 * BACKOFF_CAP
