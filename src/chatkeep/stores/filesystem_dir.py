"""The filesystem store's directory: its lock, loading its logs, writing commits to them.

:class:`LogDirectory` owns everything on disk; the backend in ``filesystem`` owns the
working state (a :class:`MemoryBackend`) and decides what each commit writes.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from chatkeep.core.models import JSON, Session
from chatkeep.errors import ChatkeepError, CorruptDataError, StoreUnavailableError
from chatkeep.stores.filesystem_journal import (
    JOURNAL_DIR,
    FileAction,
    apply_actions,
    recover_journals,
    remove_journal,
    write_journal,
)
from chatkeep.stores.filesystem_log import (
    TEMP_PREFIX,
    file_name,
    fsync_dir,
    log_path,
    read_log,
    replay,
    session_id_of,
    snapshot_lines,
    weight,
)
from chatkeep.stores.memory import MemoryBackend

LOCK_NAME = ".lock"
COMPACT_SLACK = 64


@dataclass(slots=True)
class _LogFile:
    size: int
    """Bytes of whole lines; anything after them is a torn line, cut off at the next append."""
    weight: int
    """Records in the log (a message counts one), to tell when to compact it."""


class LogDirectory:
    def __init__(self, directory: Path, lock_fd: int, sync: bool) -> None:
        self.path = directory
        self._lock_fd: int | None = lock_fd
        self._sync = sync
        self._files: dict[str, _LogFile] = {}
        self._corrupt: dict[str, str] = {}
        self._notes: list[str] = []
        self._issues: list[str] = []
        self.broken: str | None = None
        """Why the directory takes no more commits (a journal is left to apply at open)."""

    @classmethod
    def open(cls, path: str, sync: bool) -> LogDirectory:
        """Create (if needed) and lock the directory ``path``."""
        try:
            Path(path).mkdir(parents=True, exist_ok=True)
            directory = Path(path).resolve(strict=True)
            (directory / JOURNAL_DIR).mkdir(exist_ok=True)
            if sync:
                fsync_dir(directory)
            fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreUnavailableError(f"cannot use {path!r} as a file store: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StoreUnavailableError(
                f"the file store {directory} is in use by another process or store"
            ) from exc
        return cls(directory, fd, sync)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- loading ------------------------------------------------------------
    def load(self, memory: MemoryBackend) -> None:
        """Finish what a crash interrupted, then replay every log into ``memory``."""
        try:
            self._notes = recover_journals(self.path, self._sync)
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX):
                    os.unlink(entry.path)
                    self._notes.append(f"removed the unfinished temporary file {entry.name}")
        except (OSError, ValueError) as exc:
            raise StoreUnavailableError(
                f"cannot recover the file store {self.path}: {exc}"
            ) from exc
        for entry in entries:
            session_id = session_id_of(entry.name)
            if session_id is not None:
                self._load_log(memory, session_id, Path(entry.path))
            elif entry.name not in (LOCK_NAME, JOURNAL_DIR) and not entry.name.startswith(
                TEMP_PREFIX
            ):
                self._issues.append(f"unexpected file in the store directory: {entry.name}")

    def _load_log(self, memory: MemoryBackend, session_id: str, path: Path) -> None:
        memory.begin(write=True)
        try:
            log = read_log(path)
            replay(memory, session_id, log.lines)
        except (OSError, ValueError) as exc:
            memory.rollback()
            self._corrupt[session_id] = str(exc)
            return
        memory.commit()
        self._files[session_id] = _LogFile(log.size, sum(weight(ops) for ops in log.lines))
        if log.torn:
            self._notes.append(f"ignored the torn last line of {path.name}")

    def usable(self, session_id: str) -> None:
        """Raise :class:`CorruptDataError` if the session's log could not be loaded."""
        reason = self._corrupt.get(session_id)
        if reason is not None:
            raise CorruptDataError(str(self.path / file_name(session_id)), reason)

    # -- writing ------------------------------------------------------------
    def check_name(self, session_id: str) -> None:
        """Raise unless the session's log can be a file of this directory."""
        log_path(self.path, session_id)

    def size(self, session_id: str) -> int:
        known = self._files.get(session_id)
        return 0 if known is None else known.size

    def writable(self) -> None:
        if self.broken is not None:
            raise StoreUnavailableError(self.broken)

    def write(self, actions: list[FileAction]) -> None:
        """Make a commit durable, all or nothing; raises if it was not.

        When a journaled commit is durable but cannot be applied in full, this returns
        (the journal is applied at the next open) and the directory takes no more commits.
        """
        self.writable()
        try:
            if len(actions) == 1:
                apply_actions(self.path, actions, self._sync)
                return
            journal = write_journal(self.path, actions, self._sync)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot write to the file store {self.path}: {exc}"
            ) from exc
        try:
            apply_actions(self.path, actions, self._sync)
            remove_journal(journal, self._sync)
        except (OSError, ChatkeepError) as exc:
            self.broken = (
                f"the file store {self.path} failed while applying the journal {journal.name} "
                f"({exc}); it holds the last commit and is applied when the store is reopened"
            )

    def written(self, actions: list[FileAction], memory: MemoryBackend) -> None:
        """Track the logs' sizes after ``write``; compact those grown well past their content."""
        if self.broken is not None:
            return
        for action in actions:
            sid = action.session_id
            if action.kind == "remove":
                self._files.pop(sid, None)
                continue
            size, added = len(action.data), sum(weight(ops) for ops in action.lines)
            known = self._files.get(sid)
            if action.kind == "append" and known is not None:
                size, added = known.size + size, known.weight + added
            self._files[sid] = _LogFile(size, added)
            session = memory.get_session(sid)
            if session is not None and added > 2 * (session.message_count + 1) + COMPACT_SLACK:
                self.compact(session, memory)

    def compact(self, session: Session, memory: MemoryBackend) -> int:
        """Rewrite the session's log as a snapshot; returns its new size (0 if that failed)."""
        if self.broken is not None:
            return 0
        lines = snapshot_lines(session, memory.iter_messages(session.id))
        action = FileAction(session.id, "replace", lines)
        try:
            apply_actions(self.path, [action], self._sync)
        except OSError as exc:
            self._issues.append(f"could not compact the log of session {session.id!r}: {exc}")
            return 0
        self._files[session.id] = _LogFile(len(action.data), sum(weight(ops) for ops in lines))
        return len(action.data)

    def compact_all(self, memory: MemoryBackend) -> list[str]:
        before = after = done = 0
        for sid, log in list(self._files.items()):
            session = memory.get_session(sid)
            if session is not None and log.weight > session.message_count + 1:
                before += log.size
                after += self.compact(session, memory)
                done += 1
        if not done:
            return ["nothing to compact: every session log holds only live records"]
        logs = "session log" if done == 1 else "session logs"
        return [f"compacted {done} {logs} from {before} to {after} bytes"]

    # -- checking -----------------------------------------------------------
    def report(self) -> tuple[list[str], dict[str, JSON]]:
        issues = [f"{self.path / file_name(sid)}: {why}" for sid, why in self._corrupt.items()]
        issues += self._issues
        if self.broken is not None:
            issues.append(self.broken)
        try:
            sizes = [
                entry.stat().st_size
                for entry in os.scandir(self.path)
                if session_id_of(entry.name) is not None
            ]
        except OSError as exc:
            issues.append(f"cannot list the file store {self.path}: {exc}")
            sizes = []
        details: dict[str, JSON] = {
            "directory": str(self.path),
            "files": len(sizes),
            "bytes": sum(sizes),
            "corrupt_files": len(self._corrupt),
            "recovery": list[JSON](self._notes),
        }
        return issues, details
