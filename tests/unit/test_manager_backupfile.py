from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import chatkeep
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import NewMessage, Persistence
from chatkeep.errors import CorruptDataError, StoreClosedError
from chatkeep.manager.backupfile import BackupSection, read_contents, read_sections, write_backup
from chatkeep.stores.base import Store

DURABLE, NONE, CLIENT = Persistence.DURABLE, Persistence.NONE, Persistence.CLIENT


@pytest.fixture
async def stores(fake_clock: FakeClock) -> AsyncIterator[list[Store]]:
    async with (
        chatkeep.open_store("memory://", clock=fake_clock) as a,
        chatkeep.open_store("memory://", clock=fake_clock) as b,
    ):
        for i in range(3):
            s = await a.create_session(id=f"a{i}", metadata={"n": i})
            await a.append_messages(s.id, [NewMessage(role="user", content=f"hello {i}")])
        await b.create_session(id="b0", persistence=NONE)
        yield [a, b]


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


async def exported(store: Store) -> list[str]:
    return [line async for line in store.export_sessions()]


async def collect(path: Path) -> list[tuple[tuple[Persistence, ...], list[str]]]:
    got: list[tuple[tuple[Persistence, ...], list[str]]] = []

    async def handle(modes: tuple[Persistence, ...], lines: AsyncIterator[str]) -> None:
        got.append((modes, [line async for line in lines]))

    await read_sections(path, handle)
    return got


async def test_round_trip(tmp_path: Path, stores: list[Store], fake_clock: FakeClock) -> None:
    path = tmp_path / "b.jsonl"
    contents = await write_backup(
        path, fake_clock.now(), [((DURABLE,), stores[0]), ((NONE, CLIENT), stores[1])]
    )
    assert contents.sections == (
        BackupSection((DURABLE,), 3),
        BackupSection((NONE, CLIENT), 1),
    )
    assert contents.session_count == 4
    assert read_contents(path) == contents
    assert read_contents(path).created_at == fake_clock.now()
    assert await collect(path) == [
        ((DURABLE,), await exported(stores[0])),
        ((NONE, CLIENT), await exported(stores[1])),
    ]
    assert names_in(tmp_path) == ["b.jsonl"]


async def test_a_backup_of_nothing(tmp_path: Path, fake_clock: FakeClock) -> None:
    path = tmp_path / "empty.jsonl"
    contents = await write_backup(path, fake_clock.now(), [])
    assert contents.session_count == 0
    assert read_contents(path).sections == ()
    assert await collect(path) == []


async def test_a_handler_may_leave_lines_unread(
    tmp_path: Path, stores: list[Store], fake_clock: FakeClock
) -> None:
    path = tmp_path / "b.jsonl"
    await write_backup(path, fake_clock.now(), [((DURABLE,), stores[0]), ((NONE,), stores[1])])
    seen: list[tuple[Persistence, ...]] = []

    async def handle(modes: tuple[Persistence, ...], lines: AsyncIterator[str]) -> None:
        seen.append(modes)
        await anext(lines)

    await read_sections(path, handle)
    assert seen == [(DURABLE,), (NONE,)]


async def test_a_failed_export_leaves_no_file(
    tmp_path: Path, stores: list[Store], fake_clock: FakeClock
) -> None:
    await stores[1].close()
    with pytest.raises(StoreClosedError):
        await write_backup(
            tmp_path / "b.jsonl", fake_clock.now(), [((DURABLE,), stores[0]), ((NONE,), stores[1])]
        )
    assert names_in(tmp_path) == []


async def write_valid(path: Path, stores: list[Store], clock: FakeClock) -> list[str]:
    await write_backup(path, clock.now(), [((DURABLE,), stores[0])])
    return lines_of(path)


async def test_a_file_cut_short_is_refused(
    tmp_path: Path, stores: list[Store], fake_clock: FakeClock
) -> None:
    path = tmp_path / "b.jsonl"
    lines = await write_valid(path, stores, fake_clock)
    path.write_text("".join(lines[:-1]))
    with pytest.raises(CorruptDataError, match="incomplete"):
        read_contents(path)
    with pytest.raises(CorruptDataError, match="incomplete"):
        await collect(path)
    path.write_text("".join(lines[:-1]) + lines[-1][:20])
    with pytest.raises(CorruptDataError, match="not JSON"):
        read_contents(path)


@pytest.mark.parametrize(
    ("first", "message"),
    [
        ('{"format":"chatkeep-export","version":1}\n', "not a chatkeep backup header"),
        ('{"chatkeep_backup":2,"created_at":0}\n', "not a chatkeep backup header"),
        ("[1, 2]\n", "not a JSON object"),
        ("hello\n", "not JSON"),
    ],
)
async def test_a_file_that_is_not_a_backup_is_refused(
    tmp_path: Path, stores: list[Store], fake_clock: FakeClock, first: str, message: str
) -> None:
    path = tmp_path / "b.jsonl"
    lines = await write_valid(path, stores, fake_clock)
    path.write_text(first + "".join(lines[1:]))
    with pytest.raises(CorruptDataError, match=message):
        read_contents(path)
    with pytest.raises(CorruptDataError, match=message):
        await collect(path)


async def test_lines_before_the_first_section_are_refused(
    tmp_path: Path, stores: list[Store], fake_clock: FakeClock
) -> None:
    path = tmp_path / "b.jsonl"
    lines = await write_valid(path, stores, fake_clock)
    path.write_text(lines[0] + lines[2] + "".join(lines[1:]))
    with pytest.raises(CorruptDataError, match="before the first section"):
        await collect(path)


@pytest.mark.parametrize(
    "section", ['{"chatkeep_backup_section":["disk"]}\n', '{"chatkeep_backup_section":[]}\n']
)
async def test_a_section_must_name_known_modes(
    tmp_path: Path, stores: list[Store], fake_clock: FakeClock, section: str
) -> None:
    path = tmp_path / "b.jsonl"
    lines = await write_valid(path, stores, fake_clock)
    path.write_text(lines[0] + section + "".join(lines[2:]))
    with pytest.raises(CorruptDataError, match="mode"):
        await collect(path)


async def test_a_bad_closing_summary_is_refused(
    tmp_path: Path, stores: list[Store], fake_clock: FakeClock
) -> None:
    path = tmp_path / "b.jsonl"
    lines = await write_valid(path, stores, fake_clock)
    path.write_text(
        "".join(lines[:-1]) + '{"chatkeep_backup_end":{"sections":[{"modes":["none"]}]}}\n'
    )
    with pytest.raises(CorruptDataError, match="closing summary"):
        read_contents(path)
