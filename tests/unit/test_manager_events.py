from __future__ import annotations

import asyncio
import logging

import pytest

from chatkeep.errors import InvalidInputError
from chatkeep.manager import Event, EventBus, EventType


def event(kind: EventType = EventType.SESSION_CREATED, session_id: str = "s1") -> Event:
    return Event(kind, session_id)


def test_callbacks_get_every_event_in_order() -> None:
    bus = EventBus()
    first: list[Event] = []
    second: list[str] = []
    bus.subscribe(first.append)
    bus.subscribe(lambda e: second.append(e.session_id))
    bus.publish(event(session_id="a"))
    bus.publish(event(EventType.SESSION_DELETED, "b"))
    assert [(e.type, e.session_id) for e in first] == [
        (EventType.SESSION_CREATED, "a"),
        (EventType.SESSION_DELETED, "b"),
    ]
    assert second == ["a", "b"]


def test_unsubscribe() -> None:
    bus = EventBus()
    got: list[Event] = []
    callback = bus.subscribe(got.append)
    assert bus.unsubscribe(callback) is True
    assert bus.unsubscribe(callback) is False
    bus.publish(event())
    assert got == []


def test_a_failing_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    got: list[Event] = []

    def broken(_event: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(got.append)
    with caplog.at_level(logging.ERROR, logger="chatkeep.manager.events"):
        bus.publish(event())
    assert len(got) == 1
    assert bus.callback_errors == 1
    assert "session:created" in caplog.text
    assert "boom" in caplog.text


def test_refuses_async_and_non_callable_callbacks() -> None:
    bus = EventBus()

    async def consumer(_event: Event) -> None:
        return None

    with pytest.raises(InvalidInputError, match=r"listen\(\)"):
        bus.subscribe(consumer)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="callable"):
        bus.subscribe("not a function")  # type: ignore[arg-type]


async def test_a_listener_gets_the_events_published_after_it_was_made() -> None:
    bus = EventBus()
    bus.publish(event(session_id="before"))
    async with bus.listen() as listener:
        bus.publish(event(session_id="a"))
        bus.publish(event(session_id="b"))
        assert listener.pending == 2
        assert (await anext(listener)).session_id == "a"
        assert (await anext(listener)).session_id == "b"


async def test_a_waiting_listener_wakes_up_on_publish() -> None:
    bus = EventBus()
    listener = bus.listen()
    waiter = asyncio.create_task(anext(listener))
    await asyncio.sleep(0)
    assert not waiter.done()
    bus.publish(event(session_id="x"))
    got = await asyncio.wait_for(waiter, timeout=5)
    assert got.session_id == "x"
    listener.close()


async def test_listening_to_some_types_only() -> None:
    bus = EventBus()
    listener = bus.listen(types=["session:expired", EventType.SESSION_DELETED])
    bus.publish(event(EventType.SESSION_CREATED))
    bus.publish(event(EventType.SESSION_EXPIRED, "e"))
    bus.publish(event(EventType.SESSION_DELETED, "d"))
    bus.close()
    assert [e.session_id async for e in listener] == ["e", "d"]


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="types"):
        EventBus().listen(types=["session:renamed"])


@pytest.mark.parametrize("size", [0, -3, True])
def test_a_queue_size_below_one_is_refused(size: int) -> None:
    with pytest.raises(InvalidInputError, match="maxsize"):
        EventBus().listen(maxsize=size)


async def test_a_slow_listener_drops_the_oldest_and_counts_them() -> None:
    bus = EventBus()
    listener = bus.listen(maxsize=3)
    for i in range(10):
        bus.publish(event(session_id=f"s{i}"))
    assert listener.dropped == 7
    bus.close()
    assert [e.session_id async for e in listener] == ["s7", "s8", "s9"]


async def test_the_default_queue_size_comes_from_the_bus() -> None:
    bus = EventBus(listener_queue_size=2)
    listener = bus.listen()
    for i in range(5):
        bus.publish(event(session_id=f"s{i}"))
    assert listener.dropped == 3
    assert listener.pending == 2


async def test_closing_the_bus_ends_listeners_after_they_drain() -> None:
    bus = EventBus()
    listener = bus.listen()
    bus.publish(event(session_id="last"))
    waiting = bus.listen()
    waiter = asyncio.create_task(anext(waiting, None))
    await asyncio.sleep(0)
    bus.close()
    assert [e.session_id async for e in listener] == ["last"]
    assert await asyncio.wait_for(waiter, timeout=5) is None
    late = bus.listen()
    assert late.closed
    assert [e async for e in late] == []
    assert bus.listener_count == 0


async def test_leaving_the_block_unregisters_the_listener() -> None:
    bus = EventBus()
    async with bus.listen() as listener:
        assert bus.listener_count == 1
    assert bus.listener_count == 0
    bus.publish(event())
    assert listener.pending == 0
    listener.close()
    assert listener.closed


def test_events_are_immutable() -> None:
    e = event()
    with pytest.raises(AttributeError):
        e.session_id = "other"  # type: ignore[misc]
    assert e.session is None
    assert e.messages == ()
