"""How a commit reaches the session files, all or nothing.

A commit is a list of :class:`FileAction`, one per session it changed. One action is
atomic by itself (an append of one line, a rename, an unlink). Several are first written,
with a checksummed commit marker, to a journal file ``_journal/<ulid>.jsonl`` that is
made durable before any session file is touched, and removed once all are applied. At
open, a complete journal is applied again, which is idempotent: an append records the
size its file had, and re-applying it cuts the file back to that size first. An
incomplete journal (no valid marker: the crash came before the commit) is discarded.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from chatkeep.core.ids import new_id
from chatkeep.core.models import JSON
from chatkeep.stores.filesystem_log import (
    Op,
    append_at,
    check_ops,
    encode_json_line,
    encode_line,
    fsync_dir,
    log_path,
    write_all,
    write_atomic,
)

JOURNAL_DIR = "_journal"

ActionKind = Literal["append", "replace", "remove"]
_KINDS: frozenset[str] = frozenset(("append", "replace", "remove"))


@dataclass(frozen=True)
class FileAction:
    """What a commit does to one session's log."""

    session_id: str
    kind: ActionKind
    lines: list[list[Op]] = field(default_factory=list)
    offset: int = 0
    """For an append: the size of the file's whole lines before it."""

    @cached_property
    def data(self) -> bytes:
        return b"".join(encode_line(ops) for ops in self.lines)

    def to_json(self) -> JSON:
        return {
            "session": self.session_id,
            "action": self.kind,
            "offset": self.offset,
            "lines": [list[JSON](ops) for ops in self.lines],
        }

    @classmethod
    def from_json(cls, value: object) -> FileAction:
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        session_id, kind = value.get("session"), value.get("action")
        offset, lines = value.get("offset"), value.get("lines")
        if not isinstance(session_id, str) or kind not in _KINDS:
            raise ValueError("expected a session id and an action")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError("expected an offset")
        if not isinstance(lines, list):
            raise ValueError("expected a list of lines")
        return cls(session_id, kind, [check_ops(ops) for ops in lines], offset)


def apply_actions(directory: Path, actions: list[FileAction], sync: bool) -> None:
    """Carry out each action; the directory is synced once if entries were added or removed."""
    entries_changed = False
    for action in actions:
        path = log_path(directory, action.session_id)
        if action.kind == "append":
            append_at(path, action.offset, action.data, sync)
            entries_changed = entries_changed or action.offset == 0
        elif action.kind == "replace":
            write_atomic(path, action.data, sync)
            entries_changed = True
        else:
            path.unlink(missing_ok=True)
            entries_changed = True
    if entries_changed and sync:
        fsync_dir(directory)


def write_journal(directory: Path, actions: list[FileAction], sync: bool) -> Path:
    """Write and make durable the journal of a commit; returns its path."""
    body = b"".join(encode_json_line(action.to_json()) for action in actions)
    marker = encode_json_line({"commit": len(actions), "crc32": zlib.crc32(body)})
    path = directory / JOURNAL_DIR / f"{new_id()}.jsonl"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            write_all(fd, body + marker)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if sync:
            fsync_dir(path.parent)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def remove_journal(path: Path, sync: bool) -> None:
    path.unlink()
    if sync:
        fsync_dir(path.parent)


def read_journal(path: Path) -> list[FileAction] | None:
    """The actions of a complete journal, or None if its commit marker is missing or wrong."""
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        return None
    cut = data.rfind(b"\n", 0, len(data) - 1) + 1
    body = data[:cut]
    try:
        marker = json.loads(data[cut:])
    except ValueError:
        return None
    lines = body.split(b"\n")[:-1]
    if (
        not isinstance(marker, dict)
        or marker.get("commit") != len(lines)
        or marker.get("crc32") != zlib.crc32(body)
    ):
        return None
    return [FileAction.from_json(json.loads(line)) for line in lines]


def recover_journals(directory: Path, sync: bool) -> list[str]:
    """Apply the complete journals left by a crash, discard the others; what was done."""
    done: list[str] = []
    for path in sorted((directory / JOURNAL_DIR).glob("*.jsonl")):
        actions = read_journal(path)
        if actions is None:
            done.append(f"discarded the incomplete journal {path.name}")
        else:
            apply_actions(directory, actions, sync)
            done.append(f"applied the journal {path.name} ({len(actions)} sessions)")
        remove_journal(path, sync)
    return done
