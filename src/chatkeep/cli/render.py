"""How the CLI shows things: rich tables for people, JSON lines for programs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from chatkeep.core.codec import message_to_dict, session_to_dict
from chatkeep.core.models import JSON, Message, Session
from chatkeep.stores import StoreStats


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr), sized for the terminal of this invocation."""
    return Console(stderr=stderr, highlight=False)


def when(moment: datetime | None, empty: str = "-") -> str:
    if moment is None:
        return empty
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def span(delta: timedelta | None) -> str:
    """A duration the way the configuration writes one: ``1d``, ``1h30m``, ``45s``."""
    if delta is None:
        return "never"
    left = round(delta.total_seconds())
    text = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        text += f"{count}{unit}" if count else ""
    return text or "0s"


def json_line(value: JSON) -> None:
    """One compact JSON document on its own line of stdout."""
    typer.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def session_json(session: Session, messages: Iterable[Message] | None = None) -> JSON:
    record = session_to_dict(session)
    if messages is not None:
        record["messages"] = [message_to_dict(m) for m in messages]
    return record


def _text(value: object) -> Text:
    """A table cell shown literally (never read as rich markup)."""
    return Text("-" if value is None else str(value))


def sessions_table(sessions: Iterable[Session]) -> Table:
    table = Table(
        Column("id", no_wrap=True),
        "owner",
        "persistence",
        "messages",
        "tags",
        Column("last activity", no_wrap=True),
        Column("expires", no_wrap=True),
    )
    for s in sessions:
        table.add_row(
            _text(s.id),
            _text(s.owner),
            _text(s.persistence.value),
            _text(s.message_count),
            _text(", ".join(sorted(s.tags)) or None),
            _text(when(s.last_activity_at)),
            _text(when(s.expires_at, "never")),
        )
    return table


def session_table(session: Session) -> Table:
    table = Table("field", "value", show_header=False)
    rows: list[tuple[str, object]] = [
        ("id", session.id),
        ("owner", session.owner),
        ("device", session.device_id),
        ("persistence", session.persistence.value),
        ("created", when(session.created_at)),
        ("last activity", when(session.last_activity_at)),
        ("expires", when(session.expires_at, "never")),
        ("ttl", span(session.ttl)),
        ("max messages", session.max_messages),
        ("messages", f"{session.message_count} (last seq {session.last_seq})"),
        ("tags", ", ".join(sorted(session.tags)) or None),
        (
            "metadata",
            json.dumps(session.metadata, ensure_ascii=False) if session.metadata else None,
        ),
        ("version", session.version),
    ]
    if session.lock is not None:
        rows.append(("lock", f"{session.lock.agent} until {when(session.lock.expires_at)}"))
    for name, value in rows:
        table.add_row(_text(name), _text(value))
    return table


def messages_table(messages: Iterable[Message]) -> Table:
    table = Table("seq", "role", Column("time", no_wrap=True), "content")
    for m in messages:
        content = m.content if isinstance(m.content, str) else json.dumps(m.content)
        table.add_row(_text(m.seq), _text(m.role.value), _text(when(m.created_at)), _text(content))
    return table


def stats_table(stats: StoreStats) -> Table:
    table = Table("", "count", title=f"{stats.backend} store")
    table.add_row("sessions", str(stats.total_sessions))
    table.add_row("  active", str(stats.active_sessions))
    table.add_row("  expired", str(stats.expired_sessions))
    table.add_row("messages", str(stats.total_messages))
    for owner, count in sorted(stats.sessions_by_owner.items()):
        table.add_row(_text(f"  owner {owner or '-'}"), str(count))
    return table


def stats_json(stats: StoreStats) -> JSON:
    return {
        "backend": stats.backend,
        "total_sessions": stats.total_sessions,
        "active_sessions": stats.active_sessions,
        "expired_sessions": stats.expired_sessions,
        "total_messages": stats.total_messages,
        "sessions_by_owner": dict(stats.sessions_by_owner),
        "details": dict(stats.details),
    }


def progress(*, in_bytes: bool = False) -> Progress:
    """A progress bar on stderr, counting items (or bytes); shown only on a terminal."""
    err = console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn() if in_bytes else MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )
