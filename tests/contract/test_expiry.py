"""Activity expiry under a fake clock: renewal, expiry, cleanup, explicit expiration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chatkeep import (
    FakeClock,
    SessionExistsError,
    SessionExpiredError,
    SessionFilter,
    SessionNotFoundError,
    Store,
)

from .support import batch, filled, ids_of, rejected, seqs, unchanged

TTL = timedelta(minutes=10)
TICK = timedelta(microseconds=1)


async def test_writes_push_the_expiry(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=TTL)
    fake_clock.advance(timedelta(minutes=6))
    await store.append_messages(s.id, batch("a"))
    assert (await store.get_session(s.id)).expires_at == fake_clock.now() + TTL
    fake_clock.advance(timedelta(minutes=6))
    updated = await store.update_session(s.id, {"owner": "x"})
    assert updated.expires_at == fake_clock.now() + TTL
    fake_clock.advance(timedelta(minutes=6))
    touched = await store.touch(s.id)
    assert touched.expires_at == fake_clock.now() + TTL
    assert touched.last_activity_at == fake_clock.now()
    assert await store.get_session(s.id) == touched


async def test_reads_do_not_push_the_expiry(store: Store, fake_clock: FakeClock) -> None:
    s = await filled(store, 2, ttl=TTL)
    fake_clock.advance(timedelta(minutes=9))
    await store.get_session(s.id)
    await store.get_messages(s.id, last=1)
    await store.list_sessions()
    await store.search_sessions("m1")
    await store.get_session_lock(s.id)
    assert (await store.get_session(s.id)).expires_at == s.expires_at
    fake_clock.advance(timedelta(minutes=1))
    with pytest.raises(SessionExpiredError):
        await store.get_session(s.id)


async def test_expiry_is_exact(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=TTL)
    fake_clock.advance(TTL - TICK)
    assert (await store.get_session(s.id)).id == s.id
    fake_clock.advance(TICK)
    with pytest.raises(SessionExpiredError) as info:
        await store.get_session(s.id)
    assert info.value.session_id == s.id


async def test_an_expired_session_refuses_reads_and_writes(
    store: Store, fake_clock: FakeClock
) -> None:
    s = await filled(store, 2, ttl=TTL)
    fake_clock.advance(TTL)
    async with unchanged(store):
        for call in (
            store.get_session(s.id),
            store.get_messages(s.id),
            store.append_messages(s.id, batch("late")),
            store.pop_message(s.id),
            store.clear_messages(s.id),
            store.touch(s.id),
            store.update_session(s.id, {"owner": "x"}),
            store.set_session_lock(s.id, "agent"),
        ):
            with pytest.raises(SessionExpiredError):
                await call


async def test_an_expired_id_stays_taken_until_cleanup(store: Store, fake_clock: FakeClock) -> None:
    await store.create_session(id="old", ttl=TTL)
    fake_clock.advance(TTL)
    with pytest.raises(SessionExistsError):
        await store.create_session(id="old")
    assert await store.cleanup_expired_sessions() == 1
    assert (await store.create_session(id="old")).version == 1


async def test_lists_hide_expired_sessions(store: Store, fake_clock: FakeClock) -> None:
    short = await store.create_session(id="short", ttl=TTL)
    await store.create_session(id="long", ttl=TTL * 3)
    forever = await store.create_session(id="forever", ttl=None)
    fake_clock.advance(TTL)
    listed = (await store.list_sessions(sort="created_at")).sessions
    assert sorted(ids_of(listed)) == ["forever", "long"]
    everything = await store.list_sessions(SessionFilter(include_expired=True))
    assert sorted(ids_of(everything.sessions)) == ["forever", "long", "short"]
    assert await store.expire_sessions() == [short.id]
    fake_clock.advance(TTL * 100)
    assert sorted(await store.expire_sessions()) == ["long", "short"]
    assert (await store.get_session(forever.id)).expires_at is None


async def test_expire_sessions_does_not_delete(store: Store, fake_clock: FakeClock) -> None:
    await store.create_session(id="gone", ttl=TTL)
    fake_clock.advance(TTL)
    assert await store.expire_sessions() == ["gone"]
    assert await store.expire_sessions() == ["gone"]
    with pytest.raises(SessionExpiredError):
        await store.get_session("gone")


async def test_cleanup_removes_expired_sessions_only(store: Store, fake_clock: FakeClock) -> None:
    old = await filled(store, 3, ttl=TTL)
    alive = await filled(store, 1, ttl=TTL * 2)
    fake_clock.advance(TTL)
    assert await store.cleanup_expired_sessions() == 1
    with pytest.raises(SessionNotFoundError):
        await store.get_session(old.id)
    assert await store.delete_session(old.id) is False
    assert seqs(await store.get_messages(alive.id)) == [1]
    assert await store.expire_sessions() == []
    assert await store.cleanup_expired_sessions() == 0
    assert (await store.stats()).total_messages == 1


async def test_cleanup_respects_older_than(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=TTL)
    fake_clock.advance(TTL + timedelta(minutes=30))
    assert await store.cleanup_expired_sessions(older_than=timedelta(hours=1)) == 0
    assert await store.expire_sessions() == [s.id]
    fake_clock.advance(timedelta(minutes=30))
    assert await store.cleanup_expired_sessions(older_than=timedelta(hours=1)) == 1
    assert await store.expire_sessions() == []


async def test_cleanup_keeps_what_expired_after_expired_before(
    store: Store, fake_clock: FakeClock
) -> None:
    first = await store.create_session(ttl=TTL)
    fake_clock.advance(timedelta(minutes=10))
    second = await store.create_session(ttl=TTL)
    fake_clock.advance(TTL)
    looked = fake_clock.now() - timedelta(minutes=5)
    fake_clock.advance(timedelta(hours=1))
    assert await store.cleanup_expired_sessions(expired_before=looked) == 1
    assert await store.expire_sessions() == [second.id]
    with pytest.raises(SessionNotFoundError):
        await store.get_session(first.id)
    in_the_future = fake_clock.now() + timedelta(days=1)
    assert await store.cleanup_expired_sessions(expired_before=in_the_future) == 1
    assert await store.expire_sessions() == []


async def test_cleanup_refuses_a_bad_expired_before(store: Store, fake_clock: FakeClock) -> None:
    await store.create_session(ttl=TTL)
    fake_clock.advance(TTL * 2)
    for bad in (datetime(2030, 1, 1), "yesterday"):  # a naive time, not a time
        async with rejected(store, "expired_before"):
            await store.cleanup_expired_sessions(expired_before=bad)  # type: ignore[arg-type]


async def test_cleanup_refuses_a_negative_age(store: Store) -> None:
    async with rejected(store, "older_than"):
        await store.cleanup_expired_sessions(older_than=timedelta(seconds=-1))


async def test_a_session_without_ttl_never_expires(store: Store, fake_clock: FakeClock) -> None:
    s = await filled(store, 1, ttl=None)
    assert (s.ttl, s.expires_at) == (None, None)
    fake_clock.advance(timedelta(days=365 * 50))
    await store.append_messages(s.id, batch("still here"))
    assert (await store.get_session(s.id)).expires_at is None
    assert await store.expire_sessions() == []


async def test_changing_the_ttl_moves_the_expiry(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=TTL)
    u = await store.update_session(s.id, {"ttl": None})
    assert u.expires_at is None
    fake_clock.advance(TTL * 2)
    u = await store.update_session(s.id, {"ttl": 30})
    assert u.expires_at == fake_clock.now() + timedelta(seconds=30)


async def test_set_expiration(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=TTL)
    at = fake_clock.now() + timedelta(minutes=3)
    assert (await store.set_expiration(s.id, at)).expires_at == at
    assert (await store.get_session(s.id)).expires_at == at
    fake_clock.advance(timedelta(minutes=3))
    with pytest.raises(SessionExpiredError):
        await store.get_session(s.id)


async def test_set_expiration_in_another_zone_is_the_same_instant(
    store: Store, fake_clock: FakeClock
) -> None:
    s = await store.create_session(ttl=TTL)
    at = (fake_clock.now() + timedelta(hours=1)).astimezone(timezone(timedelta(hours=5)))
    stored = (await store.set_expiration(s.id, at)).expires_at
    assert stored == at
    assert (await store.get_session(s.id)).expires_at == at


async def test_set_expiration_revives_and_none_means_never(
    store: Store, fake_clock: FakeClock
) -> None:
    s = await filled(store, 2, ttl=TTL)
    fake_clock.advance(TTL * 2)
    revived = await store.set_expiration(s.id, None)
    assert revived.expires_at is None
    assert seqs(await store.get_messages(s.id)) == [1, 2]
    fake_clock.advance(timedelta(days=1000))
    assert (await store.get_session(s.id)).id == s.id


async def test_extend_expiration(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=TTL)
    assert s.expires_at is not None
    extended = await store.extend_expiration(s.id, timedelta(hours=1))
    assert extended.expires_at == s.expires_at + timedelta(hours=1)
    fake_clock.advance(TTL + timedelta(minutes=59))
    assert (await store.get_session(s.id)).id == s.id


async def test_extend_expiration_revives_an_expired_session(
    store: Store, fake_clock: FakeClock
) -> None:
    s = await filled(store, 1, ttl=TTL)
    assert s.expires_at is not None
    fake_clock.advance(TTL + timedelta(minutes=5))
    with pytest.raises(SessionExpiredError):
        await store.get_session(s.id)
    await store.extend_expiration(s.id, timedelta(minutes=10))
    assert (await store.get_session(s.id)).expires_at == s.expires_at + timedelta(minutes=10)
    assert seqs(await store.get_messages(s.id)) == [1]


async def test_explicit_expiration_of_missing_sessions(store: Store, fake_clock: FakeClock) -> None:
    with pytest.raises(SessionNotFoundError):
        await store.set_expiration("ghost", fake_clock.now())
    with pytest.raises(SessionNotFoundError):
        await store.extend_expiration("ghost", TTL)


@pytest.mark.parametrize("at", [datetime(2031, 1, 1), "2031-01-01T00:00:00Z", 1234567890])
async def test_set_expiration_refuses_what_is_not_an_aware_datetime(
    store: Store, at: object
) -> None:
    s = await store.create_session()
    async with rejected(store, "at"):
        await store.set_expiration(s.id, at)  # type: ignore[arg-type]


@pytest.mark.parametrize("by", [60, "1h", None])
async def test_extend_expiration_refuses_what_is_not_a_duration(store: Store, by: object) -> None:
    s = await store.create_session()
    async with rejected(store, "by"):
        await store.extend_expiration(s.id, by)  # type: ignore[arg-type]


async def test_expiry_survives_far_future_dates(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=None)
    far = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert (await store.set_expiration(s.id, far)).expires_at == far
    assert (await store.get_session(s.id)).expires_at == far
