"""The backup file: every store's JSONL export in one file, written atomically.

Layout, one JSON document per line::

    {"chatkeep_backup":1,"created_at":<micros>}
    {"chatkeep_backup_section":["durable"]}       modes whose store follows
    ...that store's export_sessions() lines, unchanged...
    {"chatkeep_backup_section":["none","client"]}
    ...
    {"chatkeep_backup_end":{"sections":[{"modes":["durable"],"sessions":3},...]}}

The file is written under a temporary name, flushed to disk and renamed into place, so
a backup either exists whole or not at all; the last line marks it complete.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from chatkeep.core.codec import from_micros, to_micros
from chatkeep.core.models import Persistence
from chatkeep.errors import CorruptDataError
from chatkeep.stores.base import Store

FORMAT_VERSION = 1
_HEADER = "chatkeep_backup"
_SECTION = "chatkeep_backup_section"
_END = "chatkeep_backup_end"
_MARK = '{"chatkeep_backup_'
_CHUNK = 1 << 20
_TAIL = 1 << 16


@dataclass(frozen=True, slots=True)
class BackupSection:
    modes: tuple[Persistence, ...]
    sessions: int


@dataclass(frozen=True, slots=True)
class BackupContents:
    created_at: datetime
    sections: tuple[BackupSection, ...]

    @property
    def session_count(self) -> int:
        return sum(section.sessions for section in self.sections)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":")) + "\n"


def _line(key: str, value: object) -> str:
    return _dumps({key: value})


class _Writer:
    """Buffers lines and hands them to a worker thread in large writes."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self._buffer: list[str] = []
        self._size = 0

    async def add(self, line: str) -> None:
        self._buffer.append(line if line.endswith("\n") else line + "\n")
        self._size += len(line)
        if self._size >= _CHUNK:
            await self.flush()

    async def flush(self) -> None:
        data, self._buffer, self._size = "".join(self._buffer), [], 0
        await asyncio.to_thread(self._file.write, data)


async def write_backup(
    path: Path, created_at: datetime, sections: Sequence[tuple[tuple[Persistence, ...], Store]]
) -> BackupContents:
    """Export every store of ``sections`` into ``path``, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    file = await asyncio.to_thread(open, tmp, "w", encoding="utf-8")
    try:
        writer = _Writer(file)
        await writer.add(_dumps({_HEADER: FORMAT_VERSION, "created_at": to_micros(created_at)}))
        written: list[BackupSection] = []
        for modes, store in sections:
            await writer.add(_line(_SECTION, [mode.value for mode in modes]))
            lines = 0
            async for line in store.export_sessions():
                lines += 1
                await writer.add(line)
            written.append(BackupSection(modes, max(lines - 1, 0)))
        summary = [{"modes": [m.value for m in s.modes], "sessions": s.sessions} for s in written]
        await writer.add(_line(_END, {"sections": summary}))
        await writer.flush()
        await asyncio.to_thread(_sync_and_close, file)
        await asyncio.to_thread(os.replace, tmp, path)
        await asyncio.to_thread(_sync_dir, path.parent)
    except BaseException:
        file.close()
        tmp.unlink(missing_ok=True)
        raise
    return BackupContents(created_at, tuple(written))


def _sync_and_close(file: IO[str]) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_contents(path: Path) -> BackupContents:
    """The header and the closing summary of a backup; ``CorruptDataError`` if either is
    missing or unreadable (such as a file cut short)."""
    where = f"backup {path.name}"
    with path.open("rb") as file:
        first = file.readline()
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - _TAIL))
        last = file.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    created_at = _created_at(first, where)
    end = _parse(last, where).get(_END)
    if not isinstance(end, dict) or not isinstance(end.get("sections"), list):
        raise CorruptDataError(where, "the closing summary is missing: the file is incomplete")
    try:
        sections = tuple(
            BackupSection(_modes(s["modes"], where), int(s["sessions"])) for s in end["sections"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptDataError(where, f"bad closing summary ({exc!r})") from None
    return BackupContents(created_at, sections)


def _created_at(first: bytes, where: str) -> datetime:
    header = _parse(first, where)
    micros = header.get("created_at")
    if header.get(_HEADER) != FORMAT_VERSION or not isinstance(micros, int):
        raise CorruptDataError(where, "the first line is not a chatkeep backup header")
    return from_micros(micros)


def _modes(value: object, where: str) -> tuple[Persistence, ...]:
    if not isinstance(value, list) or not value:
        raise CorruptDataError(where, "a section names no persistence mode")
    try:
        return tuple(Persistence(mode) for mode in value)
    except ValueError:
        raise CorruptDataError(where, f"a section names an unknown mode in {value!r}") from None


def _parse(raw: bytes, where: str) -> dict[str, object]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise CorruptDataError(where, "a control line is not JSON") from None
    if not isinstance(value, dict):
        raise CorruptDataError(where, "a control line is not a JSON object")
    return value


async def _read_lines(path: Path) -> AsyncGenerator[str, None]:
    file = await asyncio.to_thread(path.open, encoding="utf-8")
    try:
        while batch := await asyncio.to_thread(file.readlines, _CHUNK):
            for line in batch:
                yield line
    finally:
        file.close()


class _Sections:
    """Splits the stream of lines at each control line, as the lines are read."""

    def __init__(self, lines: AsyncGenerator[str, None]) -> None:
        self._lines = lines
        self.marker: str | None = None

    async def body(self) -> AsyncGenerator[str, None]:
        async for line in self._lines:
            if line.startswith(_MARK):
                self.marker = line
                return
            yield line
        self.marker = None


async def read_sections(
    path: Path, handle: Callable[[tuple[Persistence, ...], AsyncIterator[str]], Awaitable[None]]
) -> None:
    """Call ``handle(modes, lines)`` for each section in turn, streaming its export lines."""
    where = f"backup {path.name}"
    async with aclosing(_read_lines(path)) as lines:
        _created_at((await anext(lines, "")).encode(), where)
        sections = _Sections(lines)
        async with aclosing(sections.body()) as before:
            async for _line in before:
                raise CorruptDataError(where, "export lines come before the first section")
        while sections.marker is not None:
            control = _parse(sections.marker.encode(), where)
            if _END in control:
                return
            modes = _modes(control.get(_SECTION), where)
            async with aclosing(sections.body()) as body:
                await handle(modes, body)
                async for _unread in body:
                    continue
    raise CorruptDataError(where, "the closing summary is missing: the file is incomplete")
