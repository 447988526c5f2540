"""A directory of backups: named by time, kept to the newest N, restored by name."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chatkeep.core.clock import Clock
from chatkeep.core.models import Persistence, Session
from chatkeep.errors import (
    ChatkeepError,
    InvalidInputError,
    SessionExpiredError,
    SessionNotFoundError,
)
from chatkeep.manager.backupfile import BackupSection, read_contents, read_sections, write_backup
from chatkeep.stores.base import ImportReport, MergeStrategy, Store

logger = logging.getLogger("chatkeep.manager.backups")

NAME_PATTERN = re.compile(r"backup-\d{8}T\d{6}\.\d{6}Z\.jsonl")
_NAME_FORMAT = "backup-%Y%m%dT%H%M%S.%fZ.jsonl"


@dataclass(frozen=True, slots=True)
class Restored:
    """What an import changed: its report, and the sessions it created or replaced (as
    they are now)."""

    report: ImportReport
    created: list[Session]
    replaced: list[Session]


class Watch:
    """Finds which sessions an import into ``store`` creates or replaces, as the lines
    stream past: each session's record is read before its line reaches the store
    (:meth:`lines`), and again once the import is over (:meth:`restored`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._before: dict[str, tuple[bool, Session | None]] = {}

    async def lines(self, lines: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[str]:
        """``lines``, unchanged, each session's record read before its line is passed on."""
        if isinstance(lines, AsyncIterable):
            async for line in lines:
                await self._note(line)
                yield line
        else:
            for line in lines:
                await self._note(line)
                yield line

    async def _note(self, line: str) -> None:
        sid = _session_id(line)
        if sid is not None and sid not in self._before:
            self._before[sid] = await _record(self.store, sid)

    async def restored(self, report: ImportReport) -> Restored:
        """``report`` with the sessions the import created or replaced (none on a dry run)."""
        created: list[Session] = []
        replaced: list[Session] = []
        if report.dry_run:
            return Restored(report, created, replaced)
        for sid, (existed, was) in self._before.items():
            now = (await _record(self.store, sid))[1]
            if now is None:
                continue
            if not existed:
                created.append(now)
            elif was is None or _state(now) != _state(was):
                replaced.append(now)
        return Restored(report, created, replaced)


async def import_lines(
    store: Store, lines: Sequence[str], *, strategy: MergeStrategy | str, dry_run: bool
) -> Restored:
    """Import backup ``lines`` into ``store`` and tell which sessions it created or
    replaced (a session skipped, or unchanged, is neither)."""
    watch = Watch(store)
    report = await store.import_sessions(watch.lines(lines), strategy=strategy, dry_run=dry_run)
    return await watch.restored(report)


def _session_id(line: str) -> str | None:
    try:
        found = json.loads(line)["session"]["id"]
    except (ValueError, TypeError, KeyError):
        return None
    return found if isinstance(found, str) else None


async def _record(store: Store, session_id: str) -> tuple[bool, Session | None]:
    """Whether the store holds the session, and its record (``None`` when it has expired:
    its record cannot be read)."""
    try:
        return True, await store.get_session(session_id)
    except SessionExpiredError:
        return True, None
    except (SessionNotFoundError, InvalidInputError):
        return False, None


def _state(session: Session) -> tuple[int, datetime, int]:
    return session.version, session.updated_at, session.message_count


@dataclass(frozen=True, slots=True)
class BackupInfo:
    name: str
    """The file name, ``backup-<UTC time>.jsonl``: names sort by time."""
    path: Path
    created_at: datetime
    size: int
    """Bytes on disk."""
    session_count: int
    sections: tuple[BackupSection, ...]


def backup_name(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_NAME_FORMAT)


def backup_time(name: str) -> datetime:
    return datetime.strptime(name, _NAME_FORMAT).replace(tzinfo=UTC)


class Backups:
    """Writes, lists, rotates and restores the backups in ``directory``.

    A new backup's name sorts after every existing one: when the clock shows a time
    at or before the newest backup (two backups in one microsecond, or a clock set
    back), the new one is named (and dated) one microsecond after the newest.
    """

    def __init__(self, directory: Path, max_backups: int, clock: Clock) -> None:
        self.directory = directory
        self.max_backups = max_backups
        self._clock = clock
        self._lock = asyncio.Lock()

    def _names(self) -> list[str]:
        """Every backup file name, oldest first (also unreadable ones)."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if NAME_PATTERN.fullmatch(p.name))

    def list(self) -> list[BackupInfo]:
        """The complete, readable backups, newest first."""
        found: list[BackupInfo] = []
        for name in reversed(self._names()):
            try:
                found.append(self._info(name))
            except (ChatkeepError, OSError) as exc:
                logger.warning("skipping backup %s: %s", name, exc)
        return found

    def _info(self, name: str) -> BackupInfo:
        path = self.directory / name
        contents = read_contents(path)
        return BackupInfo(
            name=name,
            path=path,
            created_at=contents.created_at,
            size=path.stat().st_size,
            session_count=contents.session_count,
            sections=contents.sections,
        )

    def find(self, name: object) -> BackupInfo:
        """The backup called ``name``; ``InvalidInputError`` for anything else."""
        if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
            raise InvalidInputError(
                "name", f"{name!r} is not a backup name (backup-<YYYYMMDDTHHMMSS.ffffff>Z.jsonl)"
            )
        if name not in self._names():
            raise InvalidInputError("name", f"there is no backup called {name!r}")
        try:
            return self._info(name)
        except ChatkeepError as exc:
            raise InvalidInputError("name", f"backup {name!r} cannot be restored: {exc}") from exc

    async def create(self, sections: Sequence[tuple[tuple[Persistence, ...], Store]]) -> BackupInfo:
        """Export every section's store into a new backup, then drop the oldest extra ones."""
        async with self._lock:
            await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
            names = self._names()
            when = self._clock.now()
            if names:
                when = max(when, backup_time(names[-1]) + timedelta(microseconds=1))
            name = backup_name(when)
            await write_backup(self.directory / name, when, sections)
            await asyncio.to_thread(self._rotate)
            info = self._info(name)
        logger.info("backup %s written: %d sessions", name, info.session_count)
        return info

    def _rotate(self) -> None:
        names = self._names()
        for name in names[: max(0, len(names) - self.max_backups)]:
            (self.directory / name).unlink(missing_ok=True)

    async def restore(
        self,
        name: str,
        route: Callable[[tuple[Persistence, ...]], Store],
        *,
        strategy: MergeStrategy | str,
        dry_run: bool,
    ) -> Restored:
        """Import every section of the backup into the store ``route`` gives for its
        modes; the report, and the sessions created or replaced.

        Every section that holds sessions is routed before anything is imported, so a
        backup holding sessions of a mode that has no store now fails before it changes
        anything. Empty sections are skipped.
        """
        info = self.find(name)
        targets = {s.modes: route(s.modes) for s in info.sections if s.sessions}
        total = ImportReport(dry_run=dry_run)
        created: list[Session] = []
        replaced: list[Session] = []

        async def restore_section(
            modes: tuple[Persistence, ...], lines: AsyncIterator[str]
        ) -> None:
            target = targets.get(modes)
            if target is None:
                return
            watch = Watch(target)
            report = await target.import_sessions(
                watch.lines(lines), strategy=strategy, dry_run=dry_run
            )
            restored = await watch.restored(report)
            created.extend(restored.created)
            replaced.extend(restored.replaced)
            label = "+".join(mode.value for mode in modes)
            total.restored += report.restored
            total.skipped += report.skipped
            total.failed += report.failed
            total.errors.extend(f"{label}: {error}" for error in report.errors)

        await read_sections(info.path, restore_section)
        return Restored(total, created, replaced)
