"""Write-behind under failure: writers killed with SIGKILL while Redis stays up, and the
durable PostgreSQL stopped under load. In both, once things are back, the durable copy
holds every acknowledged message of every session, in order, and equals Redis's copy."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from urllib.parse import quote

import pytest

import chatkeep
from chatkeep import NewMessage, Store
from chatkeep.stores.tiered import TieredStore

from .conftest import PostgresServer, with_option

WRITER = Path(__file__).parents[1] / "contract" / "crash_child.py"
ACKS_BEFORE_KILL = 200
DRAIN_WITHIN = 60.0


def tier_url(redis_url: str, durable_url: str, **options: str) -> str:
    url = with_option(redis_url, "write_behind", quote(durable_url, safe=""))
    for name, value in options.items():
        url = with_option(url, name, value)
    return url


async def write_until_killed(url: str, session_id: str) -> int:
    """Run a writer process on ``session_id``; SIGKILL it once it has had
    :data:`ACKS_BEFORE_KILL` batches acknowledged; the highest acknowledged seq."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER),
        url,
        session_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    acked: list[int] = []
    try:
        while len(acked) < ACKS_BEFORE_KILL:
            line = await child.stdout.readline()
            if not line:
                _, errors = await child.communicate()
                pytest.fail(f"the writer exited early ({child.returncode}): {errors.decode()}")
            acked.append(int(line))
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
        rest, _ = await child.communicate()
    acked += [int(line) for line in rest.split()]  # printed before it died: acknowledged too
    assert child.returncode == -signal.SIGKILL
    assert acked == sorted(set(acked))
    return acked[-1]


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait (at most :data:`DRAIN_WITHIN` seconds) until ``check()`` is true."""
    async with asyncio.timeout(DRAIN_WITHIN):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def drained(tier: TieredStore) -> None:
    """Wait until the outbox is empty, by the worker's own syncs."""

    async def empty() -> bool:
        return (await tier.lag()).length == 0

    await until(empty)


async def histories(store: Store, ids: Sequence[str]) -> dict[str, list[tuple[int, object]]]:
    return {sid: [(m.seq, m.content) for m in await store.get_messages(sid)] for sid in ids}


async def test_killed_writers_lose_nothing_acknowledged(
    shared_redis_url: str, shared_postgres_url: str
) -> None:
    url = tier_url(shared_redis_url, shared_postgres_url, sync_interval="0.02", claim_idle="0.5")
    ids = ["alpha", "beta"]
    last = await asyncio.gather(*(write_until_killed(url, sid) for sid in ids))
    async with chatkeep.open_store(url) as tier:  # the restart: takes over their changes
        assert isinstance(tier, TieredStore)
        await drained(tier)
        hot = await histories(tier, ids)
        report = await tier.health()
        assert report.healthy, report.issues
    async with chatkeep.open_store(shared_postgres_url) as durable:
        cold = await histories(durable, ids)
        sessions = [await durable.get_session(sid) for sid in ids]
    assert cold == hot
    for sid, acked, session in zip(ids, last, sessions, strict=True):
        seqs = [seq for seq, _ in cold[sid]]
        assert seqs == list(range(1, len(seqs) + 1)), f"a gap or a reordering in {sid}"
        assert seqs[-1] >= acked, f"acknowledged seq {acked} of {sid} was lost"
        assert session.message_count == len(seqs)


async def test_a_stopped_durable_store_delays_the_sync_and_loses_nothing(
    shared_redis_url: str, postgres_server: PostgresServer
) -> None:
    durable_url = with_option(postgres_server.url, "schema", "behind")
    url = tier_url(shared_redis_url, durable_url, sync_interval="0.05")
    ids = ["s0", "s1", "s2"]
    stop = asyncio.Event()

    async def load(tier: Store, session_id: str) -> int:
        sent = 0
        while not stop.is_set():
            await tier.append_messages(session_id, NewMessage(role="user", content=f"{sent}"))
            sent += 1
            await asyncio.sleep(0.002)
        return sent

    async with chatkeep.open_store(url) as tier:
        assert isinstance(tier, TieredStore)
        for sid in ids:
            await tier.create_session(id=sid, ttl=None, max_messages=100_000)
        writers = [asyncio.create_task(load(tier, sid)) for sid in ids]
        await tier.worker.first_sync.wait()

        postgres_server.stop()
        try:
            before = (await tier.lag()).length

            async def grown() -> bool:  # appends go on; the outbox grows
                return (await tier.lag()).length >= before + 100

            await until(grown)
            report = await tier.health()
            assert not report.healthy
            assert any("write-behind" in issue for issue in report.issues), report.issues
        finally:
            postgres_server.start()
        await asyncio.sleep(0.2)  # a little more load after the durable store is back
        stop.set()
        sent = await asyncio.gather(*writers)
        await drained(tier)
        hot = await histories(tier, ids)
        assert (await tier.health()).healthy
    async with chatkeep.open_store(durable_url) as durable:
        cold = await histories(durable, ids)
    assert cold == hot
    for sid, count in zip(ids, sent, strict=True):
        assert cold[sid] == [(i + 1, f"{i}") for i in range(count)], sid
