"""Acknowledged means stored: kill -9 a writer, reopen, and find every acknowledged message."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import chatkeep

from .conftest import DURABLE, Backend
from .crash_child import content

CHILD = Path(__file__).with_name("crash_child.py")
SESSION = "crash"
ACKS_PER_ROUND = 300


def write_until_killed(url: str, log: Path) -> int:
    """Start a writer, wait for enough acknowledgements, SIGKILL it; the last acked seq."""
    with log.open("w") as errors:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), url, SESSION],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert child.stdout is not None
        acked: list[int] = []
        try:
            while len(acked) < ACKS_PER_ROUND:
                line = child.stdout.readline()
                if not line:
                    child.wait()
                    pytest.fail(f"the writer exited early ({child.returncode}): {log.read_text()}")
                acked.append(int(line))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert acked == sorted(set(acked))
    return acked[-1]


async def stored_seqs(url: str) -> list[int]:
    async with chatkeep.open_store(url) as store:
        messages = await store.get_messages(SESSION)
        session = await store.get_session(SESSION)
        health = await store.health()
    seqs = [m.seq for m in messages]
    assert [m.content for m in messages] == [content(s) for s in seqs]
    assert session.message_count == len(messages)
    assert health.healthy, health.issues
    return seqs


@pytest.mark.slow
@pytest.mark.parametrize("backend", DURABLE, ids=lambda b: b.name)
def test_acknowledged_appends_survive_sigkill(backend: Backend, tmp_path: Path) -> None:
    url = backend.url_in(tmp_path)
    for _ in range(2):
        last_acked = write_until_killed(url, tmp_path / "writer.log")
        seqs = asyncio.run(stored_seqs(url))
        assert seqs == list(range(1, len(seqs) + 1)), "a gap or a reordering in the history"
        assert seqs[-1] >= last_acked, f"acknowledged seq {last_acked} was lost"
