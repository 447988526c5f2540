"""FileBackend: replay, torn and corrupt logs, safe names, the journal, compaction, the lock."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import chatkeep
from chatkeep.core import rules
from chatkeep.core.codec import message_to_dict, session_to_dict
from chatkeep.core.models import JSON, UNSET, Message, NewMessage, Session
from chatkeep.core.query import SessionFilter, SessionSort
from chatkeep.core.validation import Limits
from chatkeep.errors import (
    ConfigurationError,
    CorruptDataError,
    InvalidInputError,
    StoreUnavailableError,
)
from chatkeep.stores import calls, ops
from chatkeep.stores.filesystem import FileBackend
from chatkeep.stores.filesystem_log import file_name

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CTX = ops.Context(NOW, Limits(), rules.SessionDefaults())


def run(b: FileBackend, op: Callable[..., object], *args: object, **kwargs: object) -> object:
    """One store operation in its own transaction, as LocalStore runs it."""
    b.begin(write=True)
    try:
        result = calls.run(b, op(CTX, *args, **kwargs))  # type: ignore[arg-type]
    except BaseException:
        b.rollback()
        raise
    b.commit()
    return result


def create(ctx: ops.Context, sid: str, **fields: object) -> calls.Op[Session]:
    wanted: dict[str, object] = {"id": sid, "owner": None, "device_id": None, "metadata": None}
    wanted |= {"persistence": UNSET, "ttl": UNSET, "max_messages": UNSET, "tags": None}
    return ops.create(ctx, wanted | fields)


def say(*texts: str) -> list[NewMessage]:
    return [NewMessage("user", t) for t in texts]


def texts(b: FileBackend, sid: str) -> list[object]:
    return [m.content for m in b.contents()[sid][1]]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def backend(root: Path) -> Iterator[FileBackend]:
    opened = FileBackend.open(str(root), {})
    yield opened
    opened.close()


def reopen(b: FileBackend, root: Path) -> FileBackend:
    b.close()
    return FileBackend.open(str(root), {})


def log_of(root: Path, sid: str) -> Path:
    return root / file_name(sid)


def with_two_sessions(b: FileBackend) -> None:
    run(b, create, "a")
    run(b, ops.append, "a", say("a1", "a2"))
    run(b, create, "b")
    run(b, ops.append, "b", say("b1"))


# -- replay --------------------------------------------------------------------
def test_reopening_replays_every_kind_of_change(backend: FileBackend, root: Path) -> None:
    run(backend, create, "win", max_messages=3, metadata={"k": "v"}, tags={"t"})
    for i in range(5):
        run(backend, ops.append, "win", say(f"w{i}"))
    run(backend, ops.update, "win", {"merge_metadata": {"more": [1, 2]}}, None)
    run(backend, ops.set_lock, "win", "agent-1", 60)
    run(backend, create, "pop")
    run(backend, ops.append, "pop", say("p1", "p2"))
    run(backend, ops.pop, "pop")
    run(backend, create, "clear")
    run(backend, ops.append, "clear", say("gone"))
    run(backend, ops.clear, "clear")
    run(backend, create, "deleted")
    run(backend, ops.delete, "deleted")
    backend.begin(write=True)
    calls.run(backend, ops.delete(CTX, "pop"))
    calls.run(backend, create(CTX, "pop", owner="new owner"))
    calls.run(backend, ops.append(CTX, "pop", say("reborn")))
    backend.commit()
    before = backend.contents()

    backend = reopen(backend, root)
    assert backend.contents() == before
    assert texts(backend, "win") == ["w2", "w3", "w4"]
    assert texts(backend, "pop") == ["reborn"]
    assert sorted(p.name for p in root.glob("*.jsonl")) == sorted(
        file_name(s) for s in ("win", "pop", "clear")
    )
    assert backend.check()[0] == []
    backend.close()


def test_each_commit_appends_one_line_to_each_session_it_changed(
    backend: FileBackend, root: Path
) -> None:
    with_two_sessions(backend)
    a, b = log_of(root, "a").read_bytes(), log_of(root, "b").read_bytes()
    backend.begin(write=True)
    calls.run(backend, ops.append(CTX, "a", say("a3")))
    calls.run(backend, ops.append(CTX, "b", say("b2")))
    backend.commit()
    assert log_of(root, "a").read_bytes().startswith(a)
    assert log_of(root, "a").read_bytes().count(b"\n") == a.count(b"\n") + 1
    assert log_of(root, "b").read_bytes().count(b"\n") == b.count(b"\n") + 1
    assert list((root / "_journal").iterdir()) == []


def test_a_rolled_back_transaction_writes_nothing(backend: FileBackend, root: Path) -> None:
    with_two_sessions(backend)
    files = {p.name: p.read_bytes() for p in root.glob("*.jsonl")}
    backend.begin(write=True)
    calls.run(backend, ops.append(CTX, "a", say("no")))
    calls.run(backend, ops.delete(CTX, "b"))
    calls.run(backend, create(CTX, "c"))
    backend.rollback()
    assert {p.name: p.read_bytes() for p in root.glob("*.jsonl")} == files
    assert sorted(backend.contents()) == ["a", "b"]


# -- torn and corrupt logs -----------------------------------------------------
TORN_TAILS: dict[str, Callable[[bytes], bytes]] = {
    "half-a-line": lambda last: last[: len(last) // 2],
    "whole-record-without-newline": lambda last: last.rstrip(b"\n"),
    "zeros-then-newline": lambda last: b"\0" * 40 + b"\n",
}


@pytest.mark.parametrize("tail", TORN_TAILS.values(), ids=TORN_TAILS.keys())
def test_a_torn_last_line_is_ignored_then_cut_before_the_next_append(
    backend: FileBackend, root: Path, tail: Callable[[bytes], bytes]
) -> None:
    with_two_sessions(backend)
    before = backend.contents()
    path = log_of(root, "a")
    size = path.stat().st_size
    backend.begin(write=True)
    calls.run(backend, ops.append(CTX, "a", say("never acknowledged")))
    backend.commit()
    last = path.read_bytes()[size:]
    backend.close()
    with path.open("r+b") as f:
        f.truncate(size)
        f.seek(size)
        f.write(tail(last))

    backend = FileBackend.open(str(root), {})
    assert backend.contents() == before
    assert f"ignored the torn last line of {path.name}" in backend.check()[1]["recovery"]  # type: ignore[operator]
    run(backend, ops.append, "a", say("a3"))
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert all(json.loads(line) for line in data.splitlines())
    backend = reopen(backend, root)
    assert texts(backend, "a") == ["a1", "a2", "a3"]
    backend.close()


CORRUPT_LINES = {
    "not-json": b"{garbage\n",
    "unknown-op": b'{"ops":[{"op":"rename"}]}\n',
    "bad-field": b'{"ops":[{"op":"delete_message","seq":"three"}]}\n',
    "not-a-record": b"[1,2,3]\n",
}


@pytest.mark.parametrize("bad", CORRUPT_LINES.values(), ids=CORRUPT_LINES.keys())
def test_a_bad_line_before_the_last_one_makes_only_that_session_corrupt(
    backend: FileBackend, root: Path, bad: bytes
) -> None:
    with_two_sessions(backend)
    b_before = backend.contents()["b"]
    backend.close()
    path = log_of(root, "a")
    first, rest = path.read_bytes().split(b"\n", 1)
    path.write_bytes(first + b"\n" + bad + rest)

    backend = FileBackend.open(str(root), {})
    uses: list[Callable[[], object]] = [
        lambda: backend.get_session("a"),
        lambda: backend.read_messages(
            "a", after_seq=None, before_seq=None, limit=None, newest=False
        ),
        lambda: run(backend, create, "a"),
        lambda: run(backend, ops.delete, "a"),
    ]
    for use in uses:
        with pytest.raises(CorruptDataError, match=f"{path}: line 2"):
            use()
    assert backend.contents() == {"b": b_before}
    listed = backend.query_sessions(SessionFilter(), SessionSort(), 10, None, NOW)
    assert [s.id for s in listed] == ["b"]
    issues, details = backend.check()
    assert len(issues) == 1
    assert issues[0].startswith(f"{path}: line 2")
    assert details["corrupt_files"] == 1
    run(backend, ops.append, "b", say("b2"))
    assert path.read_bytes().startswith(first + b"\n" + bad)
    backend.close()


def test_a_log_that_does_not_start_with_its_session_is_corrupt(root: Path) -> None:
    root.mkdir()
    other = session_to_dict(session_record("other"))
    log_of(root, "mine").write_bytes(
        json.dumps({"ops": [{"op": "session", "session": other}]}).encode() + b"\n"
    )
    backend = FileBackend.open(str(root), {})
    with pytest.raises(CorruptDataError, match="holds the record of session 'other'"):
        backend.get_session("mine")
    backend.close()


# -- file names ----------------------------------------------------------------
def session_record(sid: str) -> Session:
    """A valid session record whose id is then set to anything, even an invalid id."""
    valid = rules.new_session(
        now=NOW,
        defaults=rules.SessionDefaults(),
        limits=Limits(),
        id="placeholder",
        owner=None,
        device_id=None,
        persistence=UNSET,
        ttl=UNSET,
        max_messages=UNSET,
        metadata=None,
        tags=None,
    )
    return dataclasses.replace(valid, id=sid)


HOSTILE_IDS = [
    "..",
    ".",
    "../../escaped",
    "/tmp/absolute",
    "a/../../b",
    "..\\..\\windows",
    "C:\\evil",
    "con:aux",
    "nul\0byte",
    ".lock",
    "_journal",
    "ÀÉ-ünïcode",
    "lone\udc80surrogate",
    "x" * 150,
]


def test_hostile_ids_never_name_a_file_outside_the_directory(
    backend: FileBackend, root: Path
) -> None:
    for sid in HOSTILE_IDS:
        record = dataclasses.replace(session_record(sid), message_count=1, last_seq=1)
        message = Message("m1", sid, 1, chatkeep.Role.USER, "hi", None, NOW)
        backend.begin(write=True)
        backend.put_session(record, new=True)
        backend.insert_messages(sid, [message])
        backend.commit()
    outside = [p for p in root.parent.rglob("*") if root not in (p, *p.parents)]
    assert outside == []
    names = {p.name for p in root.iterdir()}
    assert names - {".lock", "_journal"} == {file_name(sid) for sid in HOSTILE_IDS}
    assert all(len(name) <= 255 for name in names)

    backend = reopen(backend, root)
    assert sorted(backend.contents()) == sorted(HOSTILE_IDS)
    assert backend.check()[0] == []
    for sid in HOSTILE_IDS:
        assert backend.contents()[sid][1][0].session_id == sid
    backend.begin(write=True)
    backend.delete_session("..")
    backend.commit()
    assert not log_of(root, "..").exists()
    assert root.is_dir()
    backend.close()


def test_an_id_too_long_for_a_file_name_is_refused_before_any_change(
    backend: FileBackend, root: Path
) -> None:
    backend.begin(write=True)
    with pytest.raises(InvalidInputError, match="too long to name a file"):
        backend.put_session(session_record("y" * 200), new=True)
    backend.commit()
    assert backend.contents() == {}
    assert list(root.glob("*.jsonl")) == []


def test_a_log_that_is_a_link_out_of_the_directory_is_never_written(
    backend: FileBackend, root: Path, tmp_path: Path
) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("untouched")
    log_of(root, "victim").symlink_to(target)
    backend.begin(write=True)
    with pytest.raises(StoreUnavailableError, match="outside"):
        backend.put_session(session_record("victim"), new=True)
    backend.rollback()
    assert target.read_text() == "untouched"
    assert backend.get_session("victim") is None


# -- the journal of a commit over several sessions ------------------------------
def journal_after_a_crash(
    root: Path, b: FileBackend, *, complete: bool, crc_ok: bool = True
) -> Path:
    """A journal, written as the commit would: a message for "a", a new session "n"."""
    a = b.contents()["a"][0]
    added = Message("j1", "a", a.last_seq + 1, chatkeep.Role.USER, "from the journal", None, NOW)
    a_after = dataclasses.replace(
        a, message_count=a.message_count + 1, last_seq=added.seq, version=a.version + 1
    )
    n = session_record("n")
    actions: list[JSON] = [
        {
            "session": "a",
            "action": "append",
            "offset": log_of(root, "a").stat().st_size,
            "lines": [
                [
                    {"op": "messages", "messages": [message_to_dict(added)]},
                    {"op": "session", "session": session_to_dict(a_after)},
                ]
            ],
        },
        {
            "session": "n",
            "action": "append",
            "offset": 0,
            "lines": [[{"op": "session", "session": session_to_dict(n)}]],
        },
    ]
    body = b"".join(json.dumps(action).encode() + b"\n" for action in actions)
    marker = {"commit": 2, "crc32": zlib.crc32(body) + (0 if crc_ok else 1)}
    path = root / "_journal" / "01J0000000000000000000000.jsonl"
    path.write_bytes(body + (json.dumps(marker).encode() + b"\n" if complete else b""))
    return path


def test_a_complete_journal_is_applied_at_open(backend: FileBackend, root: Path) -> None:
    with_two_sessions(backend)
    journal = journal_after_a_crash(root, backend, complete=True)
    backend = reopen(backend, root)
    assert texts(backend, "a") == ["a1", "a2", "from the journal"]
    assert sorted(backend.contents()) == ["a", "b", "n"]
    assert not journal.exists()
    assert backend.check()[0] == []
    assert f"applied the journal {journal.name} (2 sessions)" in backend.check()[1]["recovery"]  # type: ignore[operator]
    run(backend, ops.append, "n", say("n1"))
    backend = reopen(backend, root)
    assert texts(backend, "n") == ["n1"]
    backend.close()


@pytest.mark.parametrize("applied", ["nothing", "whole-line", "half-line"])
def test_reapplying_a_journal_after_a_crash_part_way_applies_it_once(
    backend: FileBackend, root: Path, applied: str
) -> None:
    with_two_sessions(backend)
    journal = journal_after_a_crash(root, backend, complete=True)
    line = journal.read_bytes().split(b"\n")[0]
    first = json.loads(line)["lines"][0]
    written = json.dumps({"ops": first}).encode() + b"\n"
    cut = {"nothing": 0, "whole-line": len(written), "half-line": len(written) // 2}[applied]
    with log_of(root, "a").open("ab") as f:
        f.write(written[:cut])
    backend = reopen(backend, root)
    assert texts(backend, "a") == ["a1", "a2", "from the journal"]
    assert log_of(root, "a").read_bytes().count(b"from the journal") == 1
    backend.close()


@pytest.mark.parametrize("crc_ok", [True, False], ids=["no-marker", "bad-checksum"])
def test_an_incomplete_journal_is_discarded(backend: FileBackend, root: Path, crc_ok: bool) -> None:
    with_two_sessions(backend)
    before = backend.contents()
    journal = journal_after_a_crash(root, backend, complete=not crc_ok, crc_ok=crc_ok)
    backend = reopen(backend, root)
    assert backend.contents() == before
    assert not journal.exists()
    assert f"discarded the incomplete journal {journal.name}" in backend.check()[1]["recovery"]  # type: ignore[operator]
    backend.close()


def test_a_journal_that_cannot_be_applied_stops_commits_until_reopen(
    backend: FileBackend, root: Path
) -> None:
    with_two_sessions(backend)
    obstacle = log_of(root, "n")
    obstacle.mkdir()
    backend.begin(write=True)
    calls.run(backend, ops.append(CTX, "a", say("a3")))
    calls.run(backend, create(CTX, "n"))
    backend.commit()
    with pytest.raises(StoreUnavailableError, match="applied when the store is reopened"):
        backend.begin(write=True)
    backend.begin(write=False)
    assert texts(backend, "a") == ["a1", "a2", "a3"]
    backend.commit()
    assert any("journal" in issue for issue in backend.check()[0])
    backend.close()
    obstacle.rmdir()
    backend = FileBackend.open(str(root), {})
    assert texts(backend, "a") == ["a1", "a2", "a3"]
    assert "n" in backend.contents()
    backend.close()


def test_a_failed_write_of_one_session_changes_nothing(backend: FileBackend, root: Path) -> None:
    with_two_sessions(backend)
    log_of(root, "n").mkdir()
    with pytest.raises(StoreUnavailableError, match="cannot write to the file store"):
        run(backend, create, "n")
    assert backend.get_session("n") is None
    run(backend, ops.append, "a", say("a3"))
    assert texts(backend, "a") == ["a1", "a2", "a3"]


def test_a_journal_that_cannot_be_written_changes_nothing(backend: FileBackend, root: Path) -> None:
    with_two_sessions(backend)
    files = {p.name: p.read_bytes() for p in root.glob("*.jsonl")}
    before = backend.contents()
    (root / "_journal").rmdir()
    (root / "_journal").write_text("in the way")
    backend.begin(write=True)
    calls.run(backend, ops.append(CTX, "a", say("a3")))
    calls.run(backend, ops.append(CTX, "b", say("b2")))
    with pytest.raises(StoreUnavailableError, match="cannot write to the file store"):
        backend.commit()
    backend.rollback()
    assert backend.contents() == before
    assert {p.name: p.read_bytes() for p in root.glob("*.jsonl")} == files


# -- compaction ----------------------------------------------------------------
def test_a_log_grown_past_its_content_is_compacted_as_it_goes(
    backend: FileBackend, root: Path
) -> None:
    run(backend, create, "chat", max_messages=5)
    for i in range(300):
        run(backend, ops.append, "chat", say(f"turn {i}"))
    lines = log_of(root, "chat").read_bytes().count(b"\n")
    assert lines < 2 * (5 + 1) + 64
    before = backend.contents()
    backend = reopen(backend, root)
    assert backend.contents() == before
    assert texts(backend, "chat") == [f"turn {i}" for i in range(295, 300)]
    backend.close()


def test_optimize_compacts_every_log_and_keeps_the_state(backend: FileBackend, root: Path) -> None:
    with_two_sessions(backend)
    for i in range(10):
        run(backend, ops.append, "a", say(f"more {i}"))
    sizes = {p.name: p.stat().st_size for p in root.glob("*.jsonl")}
    before = backend.contents()
    backend.begin(write=True)
    [done] = backend.optimize()
    backend.commit()
    after = {p.name: p.stat().st_size for p in root.glob("*.jsonl")}
    assert (
        done
        == f"compacted 2 session logs from {sum(sizes.values())} to {sum(after.values())} bytes"
    )
    assert after[file_name("a")] < sizes[file_name("a")]
    assert log_of(root, "a").read_bytes().count(b"\n") == 2
    assert backend.optimize() == ["nothing to compact: every session log holds only live records"]
    backend = reopen(backend, root)
    assert backend.contents() == before
    backend.close()


def test_optimize_refuses_to_snapshot_uncommitted_writes(backend: FileBackend) -> None:
    with_two_sessions(backend)
    backend.begin(write=True)
    calls.run(backend, ops.append(CTX, "a", say("pending")))
    with pytest.raises(RuntimeError, match="expected no uncommitted writes"):
        backend.optimize()
    backend.rollback()


# -- opening -------------------------------------------------------------------
def test_a_second_opener_of_the_directory_is_refused(backend: FileBackend, root: Path) -> None:
    with pytest.raises(StoreUnavailableError, match=f"{root} is in use"):
        FileBackend.open(str(root), {})
    script = "from chatkeep.stores.filesystem import FileBackend; FileBackend.open(sys.argv[1], {})"
    other = subprocess.run(
        [sys.executable, "-c", f"import sys; {script}", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert other.returncode != 0
    assert f"StoreUnavailableError: the file store {root} is in use" in other.stderr
    backend.close()
    FileBackend.open(str(root), {}).close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fsync": "sometimes"}, "fsync: must be on or off"),
        ({"cache": "1"}, "cache: is not an option"),
        ({"writer": "elsewhere"}, "writer: 'elsewhere' is not one of: thread, loop, auto"),
    ],
)
def test_bad_options_are_refused(root: Path, options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FileBackend.open(str(root), options)
    assert not root.exists()


@pytest.mark.parametrize(("options", "writer"), [({}, "auto"), ({"writer": "THREAD"}, "thread")])
def test_the_writer_option(root: Path, options: dict[str, str], writer: str) -> None:
    backend = FileBackend.open(str(root), options)
    assert backend.writer == writer
    backend.close()


def test_fsync_off_still_writes_the_logs(root: Path) -> None:
    backend = FileBackend.open(str(root), {"fsync": "off"})
    with_two_sessions(backend)
    backend = reopen(backend, root)
    assert texts(backend, "a") == ["a1", "a2"]
    backend.close()


def test_a_path_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_text("")
    with pytest.raises(StoreUnavailableError, match=r"cannot use .* as a file store"):
        FileBackend.open(str(path), {})


def test_leftover_temporary_files_are_removed_and_strangers_reported(root: Path) -> None:
    root.mkdir()
    (root / ".tmp-0123456789abcdef").write_text("half a snapshot")
    (root / "notes.txt").write_text("not ours")
    backend = FileBackend.open(str(root), {})
    assert not (root / ".tmp-0123456789abcdef").exists()
    assert backend.check()[0] == ["unexpected file in the store directory: notes.txt"]
    backend.close()


# -- durability ----------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from chatkeep.core.models import NewMessage
    from chatkeep.core.rules import SessionDefaults
    from chatkeep.core.validation import Limits
    from chatkeep.stores import calls, ops
    from chatkeep.stores.filesystem import FileBackend

    CTX = ops.Context(datetime(2030, 1, 1, tzinfo=UTC), Limits(), SessionDefaults())
    b = FileBackend.open(sys.argv[1], {})
    b.begin(write=True)
    fields = dict(id="crash", owner=None, device_id=None, metadata=None, tags=None)
    fields |= dict(persistence="durable", ttl=None, max_messages=100_000)
    calls.run(b, ops.create(CTX, fields))
    b.commit()
    while True:
        b.begin(write=True)
        [m] = calls.run(b, ops.append(CTX, "crash", [NewMessage("user", "x" * 500)])).messages
        b.commit()
        print(m.seq, flush=True)
    """
)


def test_every_acknowledged_append_survives_kill_9(root: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acked = [int(child.stdout.readline()) for _ in range(200)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    child.stdout.close()
    backend = FileBackend.open(str(root), {})
    stored = [m.seq for m in backend.contents()["crash"][1]]
    assert stored[: len(acked)] == acked
    assert backend.check()[0] == []
    backend.close()


async def test_open_store_serves_a_file_url(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/chat"
    async with chatkeep.open_store(url) as store:
        s = await store.create_session(owner="alice")
        await store.append_messages(s.id, say("hi", "there"))
        with pytest.raises(StoreUnavailableError, match="in use"):
            await chatkeep.open_store(url)
    async with chatkeep.open_store(url) as store:
        assert [m.content for m in await store.get_messages(s.id, last=20)] == ["hi", "there"]
        assert (await store.stats()).total_messages == 2
        assert (await store.health()).healthy
