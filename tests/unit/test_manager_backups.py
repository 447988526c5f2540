from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import chatkeep
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import NewMessage, Persistence
from chatkeep.errors import ConfigurationError, InvalidInputError
from chatkeep.manager.backups import Backups, backup_name
from chatkeep.stores.base import Store

DURABLE, NONE = Persistence.DURABLE, Persistence.NONE


@pytest.fixture
async def source(fake_clock: FakeClock) -> AsyncIterator[dict[Persistence, Store]]:
    async with (
        chatkeep.open_store("memory://", clock=fake_clock) as durable,
        chatkeep.open_store("memory://", clock=fake_clock) as memory,
    ):
        for i in range(3):
            await durable.create_session(id=f"d{i}", owner="alice")
            await durable.append_messages(f"d{i}", [NewMessage(role="user", content=f"m{i}")])
        await memory.create_session(id="n0", persistence=NONE)
        yield {DURABLE: durable, NONE: memory}


@pytest.fixture
async def target(fake_clock: FakeClock) -> AsyncIterator[dict[Persistence, Store]]:
    async with (
        chatkeep.open_store("memory://", clock=fake_clock) as durable,
        chatkeep.open_store("memory://", clock=fake_clock) as memory,
    ):
        yield {DURABLE: durable, NONE: memory}


def sections(stores: dict[Persistence, Store]) -> list[tuple[tuple[Persistence, ...], Store]]:
    return [((mode,), store) for mode, store in stores.items()]


async def sessions_of(store: Store) -> list[str]:
    """Every exported session line (the header, which holds the export time, left out)."""
    return [line async for line in store.export_sessions()][1:]


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_names_sort_by_time() -> None:
    when = datetime(2030, 11, 21, 12, 0, 0, 5, tzinfo=UTC)
    assert backup_name(when) == "backup-20301121T120000.000005Z.jsonl"
    assert backup_name(when) < backup_name(when + timedelta(microseconds=1))
    assert backup_name(when + timedelta(days=1)) > backup_name(when + timedelta(hours=23))


async def test_create_and_list(
    tmp_path: Path, source: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    backups = Backups(tmp_path / "new" / "dir", 5, fake_clock)
    assert backups.list() == []
    info = await backups.create(sections(source))
    assert info.name == backup_name(fake_clock.now())
    assert info.created_at == fake_clock.now()
    assert info.session_count == 4
    assert info.size == info.path.stat().st_size > 0
    assert info.path.parent == tmp_path / "new" / "dir"
    assert backups.list() == [info]


async def test_keeps_the_newest_max_backups(
    tmp_path: Path, source: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    backups = Backups(tmp_path, 3, fake_clock)
    made = []
    for _ in range(6):
        made.append((await backups.create(sections(source))).name)
        fake_clock.advance(timedelta(minutes=10))
    assert [b.name for b in backups.list()] == list(reversed(made[-3:]))
    assert names_in(tmp_path) == made[-3:]


async def test_backups_in_the_same_instant_get_distinct_names(
    tmp_path: Path, source: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    backups = Backups(tmp_path, 10, fake_clock)
    first, second = await asyncio.gather(
        backups.create(sections(source)), backups.create(sections(source))
    )
    assert first.name != second.name
    assert abs(second.created_at - first.created_at) == timedelta(microseconds=1)
    assert len(backups.list()) == 2


async def test_a_clock_set_back_still_names_new_backups_after_the_newest(
    tmp_path: Path, source: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    backups = Backups(tmp_path, 2, fake_clock)
    first = await backups.create(sections(source))
    fake_clock.advance(timedelta(hours=-1))
    second = await backups.create(sections(source))
    assert second.created_at == first.created_at + timedelta(microseconds=1)
    fake_clock.advance(timedelta(hours=-1))
    third = await backups.create(sections(source))
    assert [b.name for b in backups.list()] == [third.name, second.name]


async def test_unreadable_backups_are_not_listed_but_are_rotated_away(
    tmp_path: Path, source: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    backups = Backups(tmp_path, 2, fake_clock)
    broken = tmp_path / backup_name(fake_clock.now() - timedelta(hours=1))
    broken.write_text(
        '{"chatkeep_backup":1,"created_at":0}\n{"chatkeep_backup_section":["none"]}\n'
    )
    (tmp_path / "notes.txt").write_text("not a backup")
    (tmp_path / ".backup-20300101T000000.000000Z.jsonl.tmp").write_text("half")
    good = await backups.create(sections(source))
    assert backups.list() == [good]
    fake_clock.advance(timedelta(minutes=1))
    await backups.create(sections(source))
    assert not broken.exists()
    assert (tmp_path / "notes.txt").exists()


@pytest.mark.parametrize(
    "name",
    [
        "../backup-20300101T000000.000000Z.jsonl",
        "backup-20300101T000000.000000Z.jsonl/../../etc/passwd",
        "/etc/passwd",
        "backup-2030.jsonl",
        "",
        None,
    ],
)
async def test_find_refuses_names_that_are_not_backup_names(
    tmp_path: Path, fake_clock: FakeClock, name: object
) -> None:
    with pytest.raises(InvalidInputError, match="is not a backup name") as info:
        Backups(tmp_path, 2, fake_clock).find(name)
    assert info.value.field == "name"


async def test_find_refuses_a_backup_that_is_not_there_or_broken(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    backups = Backups(tmp_path, 2, fake_clock)
    name = backup_name(fake_clock.now())
    with pytest.raises(InvalidInputError, match="no backup called"):
        backups.find(name)
    (tmp_path / name).write_text("{}\n")
    with pytest.raises(InvalidInputError, match="cannot be restored"):
        backups.find(name)


async def test_restore_into_empty_stores(
    tmp_path: Path,
    source: dict[Persistence, Store],
    target: dict[Persistence, Store],
    fake_clock: FakeClock,
) -> None:
    backups = Backups(tmp_path, 2, fake_clock)
    info = await backups.create(sections(source))
    restored = await backups.restore(
        info.name, lambda modes: target[modes[0]], strategy="skip_existing", dry_run=False
    )
    report = restored.report
    assert (report.restored, report.skipped, report.failed, report.errors) == (4, 0, 0, [])
    for mode in (DURABLE, NONE):
        assert await sessions_of(target[mode]) == await sessions_of(source[mode])
    created = sorted(s.id for s in restored.created)
    pages = [await source[m].list_sessions(limit=100) for m in (DURABLE, NONE)]
    assert created == sorted(s.id for page in pages for s in page.sessions)
    assert len(created) == 4
    assert restored.replaced == []
    again = await backups.restore(
        info.name, lambda modes: target[modes[0]], strategy="skip_existing", dry_run=False
    )
    assert (again.report.restored, again.report.skipped) == (0, 4)
    assert (again.created, again.replaced) == ([], [])


async def test_a_dry_run_changes_nothing(
    tmp_path: Path,
    source: dict[Persistence, Store],
    target: dict[Persistence, Store],
    fake_clock: FakeClock,
) -> None:
    backups = Backups(tmp_path, 2, fake_clock)
    info = await backups.create(sections(source))
    restored = await backups.restore(
        info.name, lambda modes: target[modes[0]], strategy="overwrite", dry_run=True
    )
    assert restored.report.dry_run
    assert restored.report.restored == 4
    assert (restored.created, restored.replaced) == ([], [])
    assert await sessions_of(target[DURABLE]) == []


async def test_a_mode_without_a_store_stops_the_restore_before_it_starts(
    tmp_path: Path,
    source: dict[Persistence, Store],
    target: dict[Persistence, Store],
    fake_clock: FakeClock,
) -> None:
    backups = Backups(tmp_path, 2, fake_clock)
    info = await backups.create(sections(source))

    def only_durable(modes: tuple[Persistence, ...]) -> Store:
        if modes != (DURABLE,):
            raise ConfigurationError("stores", f"no store for {modes[0].value}")
        return target[DURABLE]

    with pytest.raises(ConfigurationError, match="no store for none"):
        await backups.restore(info.name, only_durable, strategy="overwrite", dry_run=False)
    assert await sessions_of(target[DURABLE]) == []


async def test_empty_sections_need_no_store(
    tmp_path: Path,
    source: dict[Persistence, Store],
    target: dict[Persistence, Store],
    fake_clock: FakeClock,
) -> None:
    async with chatkeep.open_store("memory://", clock=fake_clock) as empty:
        backups = Backups(tmp_path, 2, fake_clock)
        info = await backups.create([*sections(source), ((Persistence.REDIS,), empty)])
        assert info.sections[-1].sessions == 0

        def known(modes: tuple[Persistence, ...]) -> Store:
            if modes[0] not in target:
                raise ConfigurationError("stores", f"no store for {modes[0].value}")
            return target[modes[0]]

        restored = await backups.restore(info.name, known, strategy="overwrite", dry_run=False)
        assert restored.report.restored == 4
