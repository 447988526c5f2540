"""Two processes appending to one session at the same time, through PostgreSQL and
through Redis: the seqs are 1..total, none twice or missing, each writer's in its order."""

from __future__ import annotations

import asyncio
import sys

import pytest

import chatkeep

APPENDS = 120
"""Appends by each process, one message per call."""

WRITER = """
import asyncio, sys
import chatkeep
from chatkeep import NewMessage

async def main(url, session_id, name, count, writers):
    async with chatkeep.open_store(url) as store:
        await store.get_session(session_id)
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(count):
            await store.append_messages(session_id, [NewMessage("user", f"{name} {i}")])
            while i == 0 and (await store.get_session(session_id)).last_seq < writers:
                await asyncio.sleep(0.001)
    print("done", flush=True)

asyncio.run(main(*sys.argv[1:4], int(sys.argv[4]), int(sys.argv[5])))
"""


async def line_of(writer: asyncio.subprocess.Process) -> str:
    assert writer.stdout is not None
    line = await asyncio.wait_for(writer.stdout.readline(), timeout=60)
    if not line:
        assert writer.stderr is not None
        error = (await writer.stderr.read()).decode()
        pytest.fail(f"a writer exited early ({await writer.wait()}):\n{error}")
    return line.decode().strip()


async def run_writers(url: str, session_id: str, names: list[str]) -> None:
    """One process per name, started together once every one has opened the store; each
    waits after its first append until every one has made its first (so they overlap)."""
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            url,
            session_id,
            name,
            str(APPENDS),
            str(len(names)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for name in names
    ]
    try:
        assert await asyncio.gather(*map(line_of, writers)) == ["ready"] * len(names)
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write(b"go\n")
            await writer.stdin.drain()
        assert await asyncio.gather(*map(line_of, writers)) == ["done"] * len(names)
        assert [await writer.wait() for writer in writers] == [0] * len(names)
    finally:
        for writer in writers:
            if writer.returncode is None:
                writer.kill()
                await writer.wait()


async def check_two_writers(url: str) -> None:
    names = ["alpha", "beta"]
    async with chatkeep.open_store(url) as store:
        session = await store.create_session(ttl=None, max_messages=100_000)
    await run_writers(url, session.id, names)
    async with chatkeep.open_store(url) as store:
        history = await store.get_messages(session.id)
        after = await store.get_session(session.id)
    total = APPENDS * len(names)
    assert [m.seq for m in history] == list(range(1, total + 1))
    assert (after.message_count, after.last_seq) == (total, total)
    for name in names:
        mine = [m.content for m in history if str(m.content).startswith(f"{name} ")]
        assert mine == [f"{name} {i}" for i in range(APPENDS)]
    assert {m.content for m in history[:2]} == {f"{name} 0" for name in names}


async def test_two_processes_through_postgresql(shared_postgres_url: str) -> None:
    await check_two_writers(shared_postgres_url)


async def test_two_processes_through_redis(shared_redis_url: str) -> None:
    await check_two_writers(shared_redis_url)
