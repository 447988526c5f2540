"""Group commit in the local stores: appends that arrive during a commit share the next
one, each caller is answered after the commit holding its work, and one failing
operation neither fails nor undoes the others."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import pytest

import chatkeep
from chatkeep import (
    InvalidInputError,
    NewMessage,
    Session,
    SessionNotFoundError,
    StoreUnavailableError,
    VersionConflictError,
)
from chatkeep.core import rules
from chatkeep.stores import calls, ops
from chatkeep.stores.local import LocalStore

TASKS = 32
PER_TASK = 10


def user(text: str) -> NewMessage:
    return NewMessage(role="user", content=text)


@pytest.fixture(params=["auto", "thread", "loop"], ids=lambda w: f"writer={w}")
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[LocalStore]:
    """A SQLite store writing where its commits' speed says (the default), on its thread
    or on the event loop."""
    async with chatkeep.open_store(f"sqlite:///{tmp_path}/s.db?writer={request.param}") as opened:
        assert isinstance(opened, LocalStore)
        yield opened


def count_commits(store: LocalStore) -> list[int]:
    """Count the commits of the store's writer from now on (one list item each)."""
    backend: Any = store._backend
    commit = backend.commit
    done: list[int] = []

    def counted() -> None:
        commit()
        done.append(1)

    backend.commit = counted
    return done


def alone(store: LocalStore) -> int:
    """How many operations of a burst starting now commit before the rest share one
    commit: on the thread the first caller starts at once, on the loop it waits one turn
    for the others. (With ``writer=auto``, where the burst starts depends on how long the
    commits before it took: ask before the burst.)"""
    return 0 if store._group.placement.on_loop() else 1


async def fresh_view(path: Path, session_id: str) -> tuple[Session, list[str]]:
    """The session and its message contents as another store, with no cache, reads them."""
    async with chatkeep.open_store(f"sqlite:///{path}?cache_sessions=0") as other:
        session = await other.get_session(session_id)
        return session, [str(m.content) for m in await other.get_messages(session_id)]


async def test_concurrent_appends_share_commits_and_keep_every_seq(store: LocalStore) -> None:
    sessions = [await store.create_session(max_messages=1000) for _ in range(TASKS)]
    commits = count_commits(store)

    async def writer(session: Session) -> list[int]:
        acked = []
        for i in range(PER_TASK):
            (stored,) = await store.append_messages(session.id, user(f"{session.id} {i}"))
            acked.append(stored.seq)
        return acked

    acked = await asyncio.gather(*(writer(s) for s in sessions))
    assert all(seqs == list(range(1, PER_TASK + 1)) for seqs in acked)
    for session in sessions:
        history = await store.get_messages(session.id)
        assert [m.seq for m in history] == list(range(1, PER_TASK + 1))
        assert [m.content for m in history] == [f"{session.id} {i}" for i in range(PER_TASK)]
    assert len(commits) <= TASKS * PER_TASK // 8, f"{len(commits)} commits: appends not grouped"


async def test_concurrent_appends_to_one_session_in_groups(store: LocalStore) -> None:
    session = await store.create_session(max_messages=1000)
    commits = count_commits(store)
    solo = alone(store)
    results = await asyncio.gather(
        *(store.append_messages(session.id, [user(f"t{t}"), user(f"t{t}")]) for t in range(TASKS))
    )
    acked = sorted(m.seq for batch in results for m in batch)
    assert acked == list(range(1, 2 * TASKS + 1))
    history = await store.get_messages(session.id)
    assert [m.seq for m in history] == acked
    assert (await store.get_session(session.id)).message_count == 2 * TASKS
    assert len(commits) == solo + 1, "the appends that queued shared one commit"


async def test_failing_operations_leave_the_rest_of_their_group_committed(
    store: LocalStore, tmp_path: Path
) -> None:
    first, second = await store.create_session(), await store.create_session()
    renamed = await store.update_session(second.id, {"metadata": {"n": 1}})
    commits = count_commits(store)
    solo = alone(store)
    outcomes = await asyncio.gather(
        store.append_messages(first.id, user("before")),
        store.append_messages(first.id, user("a")),
        store.append_messages("no-such-session", user("lost")),
        store.append_messages(second.id, NewMessage(role="wizard", content="bad")),  # type: ignore[arg-type]
        store.update_session(second.id, {"metadata": {"n": 2}}, expected_version=1),
        store.append_messages(second.id, user("b")),
        store.update_session(second.id, {"metadata": {"n": 3}}, expected_version=renamed.version),
        return_exceptions=True,
    )
    assert len(commits) == solo + 1, "the queued operations shared one commit"
    assert isinstance(outcomes[2], SessionNotFoundError)
    assert isinstance(outcomes[3], InvalidInputError)
    assert isinstance(outcomes[4], VersionConflictError)
    assert isinstance(outcomes[6], VersionConflictError), "the append before it bumped the version"
    assert [m.content for m in await store.get_messages(first.id)] == ["before", "a"]
    after = await store.get_session(second.id)
    assert after.metadata == {"n": 1}
    assert [m.content for m in await store.get_messages(second.id)] == ["b"]
    assert await fresh_view(tmp_path / "s.db", second.id) == (after, ["b"])


def writes_then_fails(ctx: ops.Context, session_id: str) -> Generator[calls.Call, Any, None]:
    """An operation that fails after writing (as a storage error half-way would)."""
    session = yield from ops.get(ctx, session_id)
    yield from calls.put_session(rules.renewed(session, ctx.now, lock=None), new=False)
    yield from calls.insert_messages(session_id, [])
    raise StoreUnavailableError("the disk went away half-way")


async def test_an_operation_failing_after_a_write_is_undone_alone(
    store: LocalStore, tmp_path: Path
) -> None:
    one, two = await store.create_session(), await store.create_session()
    commits = count_commits(store)
    outcomes = await asyncio.gather(
        store.append_messages(one.id, user("first")),
        store.append_messages(one.id, user("x")),
        store._call(writes_then_fails, two.id, write=True),
        store.append_messages(two.id, user("y")),
        store.append_messages(one.id, user("z")),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], StoreUnavailableError)
    assert not any(isinstance(o, BaseException) for i, o in enumerate(outcomes) if i != 2)
    assert len(commits) == 4, "the group was undone, then each operation ran alone"
    assert [m.content for m in await store.get_messages(one.id)] == ["first", "x", "z"]
    cached = await store.get_session(two.id)
    assert cached.version == two.version + 1, "only the append changed the session"
    assert await fresh_view(tmp_path / "s.db", two.id) == (cached, ["y"])


async def test_a_failed_commit_fails_every_operation_of_the_group(
    store: LocalStore, tmp_path: Path
) -> None:
    one, two = await store.create_session(), await store.create_session()
    backend: Any = store._backend
    commit = backend.commit
    calls_made: list[int] = []
    solo = alone(store)

    def fails_the_group() -> None:
        calls_made.append(1)
        if len(calls_made) == solo + 1:
            raise StoreUnavailableError("disk full")
        commit()

    backend.commit = fails_the_group
    outcomes = await asyncio.gather(
        store.append_messages(one.id, user("first")),
        store.append_messages(one.id, user("lost 1")),
        store.append_messages(two.id, user("lost 2")),
        store.append_messages("missing", user("never")),
        return_exceptions=True,
    )
    kept = ["first"] if solo else []
    assert [type(o) for o in outcomes] == [
        list if kept else StoreUnavailableError,
        StoreUnavailableError,
        StoreUnavailableError,
        SessionNotFoundError,
    ]
    backend.commit = commit
    assert [m.content for m in await store.get_messages(one.id)] == kept
    assert await store.get_messages(two.id) == []
    for session, held in ((one, kept), (two, [])):
        cached = await store.get_session(session.id)
        assert await fresh_view(tmp_path / "s.db", session.id) == (cached, held)
    (again,) = await store.append_messages(two.id, user("again"))
    assert again.seq == 1


async def test_a_cancelled_caller_does_not_disturb_its_group(store: LocalStore) -> None:
    session = await store.create_session(max_messages=1000)
    tasks = [
        asyncio.create_task(store.append_messages(session.id, user(str(i)))) for i in range(TASKS)
    ]
    await asyncio.sleep(0)
    for task in tasks[1::3]:
        task.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    acked = [m for r in done if isinstance(r, list) for m in r]
    history = await store.get_messages(session.id)
    assert [m.seq for m in history] == list(range(1, len(history) + 1))
    assert all(m in history for m in acked)
    assert len(acked) >= TASKS - len(tasks[1::3])


async def test_memory_store_runs_operations_one_by_one() -> None:
    async with chatkeep.open_store("memory://") as store:
        session = await store.create_session()
        results = await asyncio.gather(
            store.append_messages(session.id, user("a")),
            store.append_messages("missing", user("b")),
            store.append_messages(session.id, user("c")),
            return_exceptions=True,
        )
        assert isinstance(results[1], SessionNotFoundError)
        assert [m.content for m in await store.get_messages(session.id)] == ["a", "c"]


CRASH_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import chatkeep

    async def main(url, tasks):
        async with chatkeep.open_store(url) as store:
            ids = [f"s{t}" for t in range(tasks)]
            for sid in ids:
                await store.create_session(id=sid, ttl=None, max_messages=1_000_000)
            print("ready", flush=True)

            async def writer(sid):
                n = 0
                while True:
                    n += 1
                    (m,) = await store.append_messages(
                        sid, chatkeep.NewMessage(role="user", content=f"{sid} {n}")
                    )
                    print(sid, m.seq, flush=True)

            await asyncio.gather(*(writer(sid) for sid in ids))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def acknowledged_before_kill(url: str, wanted: int, log: Path) -> dict[str, int]:
    """Run the concurrent writer, SIGKILL it after ``wanted`` acknowledgements; the last
    acknowledged seq of each session."""
    acked: dict[str, int] = {}
    with log.open("w") as errors:
        child = subprocess.Popen(
            [sys.executable, "-c", CRASH_WRITER, url, str(TASKS)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert child.stdout is not None
        try:
            count = 0
            while count < wanted:
                line = child.stdout.readline()
                if not line:
                    child.wait()
                    pytest.fail(f"the writer exited early ({child.returncode}): {log.read_text()}")
                if line.strip() == "ready":
                    continue
                sid, seq = line.split()
                assert int(seq) == acked.get(sid, 0) + 1
                acked[sid] = int(seq)
                count += 1
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return acked


@pytest.mark.slow
def test_concurrent_acknowledged_appends_survive_sigkill(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/crash.db"
    acked = acknowledged_before_kill(url, 600, tmp_path / "writer.log")
    assert len(acked) > 1, "the appends were not concurrent"

    async def stored() -> dict[str, list[str]]:
        async with chatkeep.open_store(url) as store:
            found = {}
            for t in range(TASKS):
                messages = await store.get_messages(f"s{t}")
                assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
                found[f"s{t}"] = [str(m.content) for m in messages]
            assert (await store.health()).healthy
            for sid in acked:  # the search index catches up with what was queued
                hits = await store.search_sessions(sid)
                assert [h.session.id for h in hits] == [sid]
            return found

    found = asyncio.run(stored())
    for sid, last in acked.items():
        assert len(found[sid]) >= last, f"{sid}: acknowledged seq {last} was lost"
        assert found[sid][:last] == [f"{sid} {n}" for n in range(1, last + 1)]


def test_counting_helper_counts(tmp_path: Path) -> None:
    """The commit counter the tests above rely on sees every commit."""

    async def scenario() -> int:
        async with chatkeep.open_store(f"sqlite:///{tmp_path}/c.db") as opened:
            assert isinstance(opened, LocalStore)
            commits = count_commits(opened)
            session = await opened.create_session()
            for i in range(3):
                await opened.append_messages(session.id, user(str(i)))
            return len(commits)

    assert asyncio.run(scenario()) == 4
