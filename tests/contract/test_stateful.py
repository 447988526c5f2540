"""Random operation sequences against each backend and a plain reference model."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

import chatkeep
from chatkeep import ChatkeepError, FakeClock, Message, NewMessage, SessionFilter, Store

from .conftest import BACKENDS, Backend
from .model import Model, Msg

T = TypeVar("T")

IDS = ("a", "b")
SESSION_IDS = st.sampled_from(IDS)
KEYS = ["k1", "k2", "k3"]
TTLS = st.sampled_from([None, timedelta(seconds=60), timedelta(seconds=120)])
WINDOWS = st.integers(min_value=1, max_value=4)
BATCHES = st.lists(
    st.tuples(st.none() | st.sampled_from(KEYS), st.sampled_from(["hi", "yo", "", "ok ok"])),
    max_size=4,
)
SEQ = st.none() | st.integers(min_value=0, max_value=10)
COUNT = st.none() | st.integers(min_value=1, max_value=4)
STEPS = st.sampled_from(
    [timedelta(seconds=1), timedelta(seconds=59), timedelta(seconds=60), timedelta(minutes=3)]
)
SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

Outcome = tuple[str, Any]


def seen(message: Message) -> Msg:
    """The store's message as the model writes it (generated ids are not the model's)."""
    assert isinstance(message.content, str)
    return Msg(message.seq, message.id if message.id in KEYS else None, message.content)


def outcome(call: Callable[[], T]) -> Outcome:
    try:
        return ("ok", call())
    except ChatkeepError as exc:
        return ("error", type(exc).__name__)


class StoreMachine(RuleBasedStateMachine):
    url = "memory://"

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.model = Model()
        self.loop = asyncio.new_event_loop()
        self.store: Store = self.loop.run_until_complete(
            chatkeep.open_store(self.url, clock=self.clock)
        )

    def teardown(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()

    def check(
        self,
        store_call: Callable[[], Awaitable[T]],
        model_call: Callable[[], object],
        convert: Callable[[T], object] = lambda x: x,
    ) -> None:
        got = outcome(lambda: convert(self.loop.run_until_complete(store_call())))
        want = outcome(model_call)
        assert got == want

    @initialize(ttl=TTLS, window=WINDOWS)
    def start(self, ttl: timedelta | None, window: int) -> None:
        self.create("a", ttl, window)

    @rule(sid=SESSION_IDS, ttl=TTLS, window=WINDOWS)
    def create(self, sid: str, ttl: timedelta | None, window: int) -> None:
        self.check(
            lambda: self.store.create_session(id=sid, ttl=ttl, max_messages=window),
            lambda: self.model.create(sid, ttl, window, self.clock.now()),
            lambda s: None,
        )

    @rule(sid=SESSION_IDS, batch=BATCHES)
    def append(self, sid: str, batch: list[tuple[str | None, str]]) -> None:
        messages = [NewMessage(role="user", content=text, id=key) for key, text in batch]
        self.check(
            lambda: self.store.append_messages(sid, messages),
            lambda: self.model.append(sid, batch, self.clock.now()),
            lambda out: [seen(m) for m in out],
        )

    @rule(sid=SESSION_IDS, text=st.sampled_from(["one", "two"]))
    def append_one(self, sid: str, text: str) -> None:
        self.append(sid, [(None, text)])

    @rule(sid=SESSION_IDS, key=st.sampled_from(KEYS))
    def append_keyed(self, sid: str, key: str) -> None:
        self.append(sid, [(key, f"text of {key}")])

    @rule(sid=SESSION_IDS)
    def pop(self, sid: str) -> None:
        self.check(
            lambda: self.store.pop_message(sid),
            lambda: self.model.pop(sid, self.clock.now()),
            lambda m: None if m is None else seen(m),
        )

    @rule(sid=SESSION_IDS)
    def clear(self, sid: str) -> None:
        self.check(
            lambda: self.store.clear_messages(sid),
            lambda: self.model.clear(sid, self.clock.now()),
        )

    @rule(sid=SESSION_IDS, window=WINDOWS)
    def set_window(self, sid: str, window: int) -> None:
        self.check(
            lambda: self.store.update_session(sid, {"max_messages": window}),
            lambda: self.model.set_window(sid, window, self.clock.now()),
            lambda s: None,
        )

    @rule(sid=SESSION_IDS)
    def touch(self, sid: str) -> None:
        self.check(
            lambda: self.store.touch(sid),
            lambda: self.model.touch(sid, self.clock.now()),
            lambda s: None,
        )

    @rule(by=STEPS)
    def advance(self, by: timedelta) -> None:
        self.clock.advance(by)

    @rule(sid=SESSION_IDS)
    def delete(self, sid: str) -> None:
        self.check(lambda: self.store.delete_session(sid), lambda: self.model.delete(sid))

    @rule()
    def cleanup(self) -> None:
        self.check(
            lambda: self.store.cleanup_expired_sessions(),
            lambda: self.model.cleanup(self.clock.now()),
        )

    @rule(sid=SESSION_IDS, last=COUNT, after=SEQ, before=SEQ, limit=COUNT)
    def read(
        self, sid: str, last: int | None, after: int | None, before: int | None, limit: int | None
    ) -> None:
        self.check(
            lambda: self.store.get_messages(
                sid, last=last, after_seq=after, before_seq=before, limit=limit
            ),
            lambda: self.model.read(sid, self.clock.now(), last, after, before, limit),
            lambda out: [seen(m) for m in out],
        )

    @rule(sid=SESSION_IDS, last=st.integers(min_value=1, max_value=3))
    def read_last(self, sid: str, last: int) -> None:
        self.read(sid, last, None, None, None)

    @rule(sid=SESSION_IDS, after=SEQ, limit=st.integers(min_value=1, max_value=3))
    def read_page(self, sid: str, after: int | None, limit: int) -> None:
        self.read(sid, None, after, None, limit)

    @rule(include_expired=st.booleans())
    def list_sessions(self, include_expired: bool) -> None:
        page = self.loop.run_until_complete(
            self.store.list_sessions(SessionFilter(include_expired=include_expired), limit=10)
        )
        got = {s.id: s.message_count for s in page.sessions}
        if include_expired:
            assert set(got) == set(self.model.sessions)
        else:
            assert got == self.model.listed(self.clock.now())
        assert page.next_cursor is None

    @invariant()
    def sessions_agree(self) -> None:
        for sid in IDS:
            self.compare_session(sid)
        expired = self.loop.run_until_complete(self.store.expire_sessions())
        assert set(expired) == self.model.expired(self.clock.now())

    def compare_session(self, sid: str) -> None:
        def summary() -> object:
            s = self.model.live(sid, self.clock.now())
            return (len(s.messages), s.last_seq, s.window, s.expires_at)

        self.check(
            lambda: self.store.get_session(sid),
            summary,
            lambda s: (s.message_count, s.last_seq, s.max_messages, s.expires_at),
        )


def machine_for(backend: Backend, root: Path) -> type[StoreMachine]:
    class Machine(StoreMachine):
        def __init__(self) -> None:
            self.url = backend.url_in(Path(tempfile.mkdtemp(dir=root)))
            super().__init__()

    return Machine


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_store_behaves_like_the_model(backend: Backend, tmp_path: Path) -> None:
    backend.require()
    run_state_machine_as_test(machine_for(backend, tmp_path), settings=SETTINGS)
