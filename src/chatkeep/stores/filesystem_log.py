"""The filesystem store's on-disk format: safe file names, log lines, replay, atomic writes.

Each session has one append-only JSONL log named after its id. Each line holds what one
committed transaction did to that session, ``{"ops": [op, ...]}``, where an op is

* ``{"op": "session", "session": {...}}``: the full session record after a change;
* ``{"op": "messages", "messages": [{...}, ...]}``: messages added;
* ``{"op": "drop_oldest", "count": n}``, ``{"op": "delete_message", "seq": s}``,
  ``{"op": "clear"}``: messages removed.

A line is the unit of atomicity: a line torn by a crash is the last one of its file, and
is ignored on read (its transaction was never acknowledged).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkeep.core.codec import (
    dumps,
    message_from_dict,
    message_to_dict,
    session_from_dict,
    session_to_dict,
)
from chatkeep.core.models import JSON, JSONObject, Message, Session
from chatkeep.errors import ChatkeepError, InvalidInputError, StoreUnavailableError
from chatkeep.stores.memory import MemoryBackend

Op = JSONObject

LOG_SUFFIX = ".jsonl"
TEMP_PREFIX = ".tmp-"
MAX_NAME_LENGTH = 255
SNAPSHOT_CHUNK = 256
_LOG_NAME = re.compile(r"[a-z2-7]+\.jsonl")


# -- file names --------------------------------------------------------------
def file_name(session_id: str) -> str:
    """The log file name of a session: its id in lower-case base32, whatever the id holds."""
    raw = session_id.encode("utf-8", "surrogatepass")
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower() + LOG_SUFFIX


def session_id_of(name: str) -> str | None:
    """The session id a log file name stands for, or None if it is not a log name."""
    if _LOG_NAME.fullmatch(name) is None:
        return None
    stem = name.removesuffix(LOG_SUFFIX).upper()
    try:
        raw = base64.b32decode(stem + "=" * (-len(stem) % 8))
        session_id = raw.decode("utf-8", "surrogatepass")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return session_id if file_name(session_id) == name else None


def log_path(directory: Path, session_id: str) -> Path:
    """The log file of a session inside ``directory`` (which must be resolved).

    Raises rather than return a path that is not a plain entry of ``directory``.
    """
    name = file_name(session_id)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError("id", f"is too long to name a file ({len(session_id)} characters)")
    path = directory / name
    resolved = path.resolve()
    if resolved.parent != directory or resolved.name != name:
        raise StoreUnavailableError(
            f"refusing to use {path}: it resolves to {resolved}, outside {directory}"
        )
    return path


# -- lines -------------------------------------------------------------------
def encode_json_line(value: JSON) -> bytes:
    """One line of UTF-8 JSON (lone surrogates, which UTF-8 cannot hold, are escaped)."""
    try:
        return (dumps(value) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(value, separators=(",", ":")) + "\n").encode("ascii")


def encode_line(ops: list[Op]) -> bytes:
    return encode_json_line({"ops": list[JSON](ops)})


def check_ops(value: Any) -> list[Op]:
    """``value`` as a list of ops; ValueError if it is not one."""
    if not isinstance(value, list) or not all(
        isinstance(op, dict) and isinstance(op.get("op"), str) for op in value
    ):
        raise ValueError("expected a list of ops")
    return value


def decode_line(raw: bytes) -> list[Op]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return check_ops(value.get("ops"))


def weight(ops: Iterable[Op]) -> int:
    """How much a line adds to a log: one per message added, one per other op."""
    total = 0
    for op in ops:
        added = op.get("messages")
        total += len(added) if op["op"] == "messages" and isinstance(added, list) else 1
    return total


def session_op(session: Session) -> Op:
    return {"op": "session", "session": session_to_dict(session)}


def messages_op(messages: Iterable[Message]) -> Op:
    return {"op": "messages", "messages": [message_to_dict(m) for m in messages]}


def snapshot_lines(session: Session, messages: Iterable[Message]) -> list[list[Op]]:
    """The lines of a compacted log: the session record, then its messages in chunks."""
    lines: list[list[Op]] = [[session_op(session)]]
    chunk: list[Message] = []
    for message in messages:
        chunk.append(message)
        if len(chunk) == SNAPSHOT_CHUNK:
            lines.append([messages_op(chunk)])
            chunk = []
    if chunk:
        lines.append([messages_op(chunk)])
    return lines


# -- reading -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LogContents:
    lines: list[list[Op]]
    size: int
    """Bytes taken by the whole lines; anything after them is a torn line."""
    torn: bool


def read_log(path: Path) -> LogContents:
    """The lines of a log. A torn last line is left out; ValueError for a bad line before it."""
    data = path.read_bytes()
    raws = data.split(b"\n")
    tail = raws.pop()
    lines: list[list[Op]] = []
    size = 0
    for number, raw in enumerate(raws, 1):
        try:
            lines.append(decode_line(raw))
        except ValueError as exc:
            if number == len(raws) and not tail:
                return LogContents(lines, size, torn=True)
            raise ValueError(f"line {number} is not a log record ({exc})") from exc
        size += len(raw) + 1
    return LogContents(lines, size, torn=bool(tail))


def replay(memory: MemoryBackend, session_id: str, lines: list[list[Op]]) -> None:
    """Apply logged lines to ``memory`` (in its open write transaction).

    ValueError naming the line if a line cannot apply.
    """
    for number, ops in enumerate(lines, 1):
        try:
            for op in ops:
                _apply(memory, session_id, op)
        except (ChatkeepError, RuntimeError, LookupError, TypeError, ValueError) as exc:
            raise ValueError(f"line {number} cannot be replayed ({exc})") from exc


def _apply(memory: MemoryBackend, session_id: str, op: Op) -> None:
    kind = op["op"]
    if kind == "session":
        session = session_from_dict(op["session"])
        if session.id != session_id:
            raise ValueError(f"holds the record of session {session.id!r}")
        memory.put_session(session, new=memory.get_session(session_id) is None)
    elif kind == "messages":
        added = op["messages"]
        if not isinstance(added, list):
            raise TypeError("messages must be a list")
        memory.insert_messages(session_id, [message_from_dict(m, session_id) for m in added])
    elif kind == "drop_oldest":
        memory.drop_oldest(session_id, _int(op["count"]))
    elif kind == "delete_message":
        memory.delete_message(session_id, _int(op["seq"]))
    elif kind == "clear":
        memory.clear_messages(session_id)
    else:
        raise ValueError(f"unknown op {kind!r}")


def _int(value: JSON) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


# -- writing -----------------------------------------------------------------
def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def append_at(path: Path, offset: int, data: bytes, sync: bool) -> None:
    """Append ``data`` to the log, which holds ``offset`` bytes of whole lines.

    Bytes past ``offset`` (a torn line, or an append that failed) are cut off first.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size < offset:
            raise OSError(f"{path} holds {size} bytes, fewer than the {offset} committed")
        if size > offset:
            os.ftruncate(fd, offset)
        try:
            write_all(fd, data)
            if sync:
                os.fsync(fd)
        except OSError:
            os.ftruncate(fd, offset)
            raise
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, sync: bool) -> None:
    """Replace ``path`` by a file holding ``data``: a temporary file, then a rename."""
    temp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            write_all(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
