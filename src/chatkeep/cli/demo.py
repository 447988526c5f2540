"""``chatkeep demo``: a short conversation stored in the configured store, read back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from chatkeep.cli.render import console, messages_table, when
from chatkeep.cli.state import configured, with_store
from chatkeep.core.models import Message, NewMessage, Session
from chatkeep.stores import Store
from chatkeep.stores.registry import StoreURL

CONVERSATION = (
    NewMessage(role="system", content="You are a helpful assistant."),
    NewMessage(role="user", content="Hi! Will you still remember this after a restart?"),
    NewMessage(role="assistant", content="Yes: every message is stored before it is acknowledged."),
    NewMessage(role="user", content="Then show me what you kept."),
)


@dataclass(frozen=True, slots=True)
class DemoRun:
    session: Session
    appended: list[Message]
    read_back: list[Message]
    sessions_in_store: int


async def run_demo(store: Store) -> DemoRun:
    """Create a session, append the conversation, and read it back."""
    session = await store.create_session(
        owner="demo", metadata={"source": "chatkeep demo"}, tags={"demo"}
    )
    appended = await store.append_messages(session.id, list(CONVERSATION))
    read_back = await store.get_messages(session.id, last=len(CONVERSATION))
    stored = await store.get_session(session.id)
    total = (await store.stats()).total_sessions
    return DemoRun(stored, appended, read_back, total)


def where(url: str) -> str:
    """Where a store URL keeps its data, for people."""
    parsed = StoreURL.parse(url)
    if parsed.scheme == "memory":
        return "in this process's memory only (gone when it exits)"
    if parsed.scheme in {"sqlite", "file"}:
        return f"in {Path(parsed.path).resolve()}"
    return url


def demo(ctx: typer.Context) -> None:
    """Store a short conversation, read it back, and say where it is kept."""
    url = configured(ctx).store.url
    result = with_store(ctx, run_demo)
    session = result.session
    expires = when(session.expires_at, "never")
    typer.echo(f"Created session {session.id} (owner {session.owner}, expires {expires}).")
    typer.echo(f"Appended {len(result.appended)} messages; read back:")
    console().print(messages_table(result.read_back))
    typer.echo(f"The store {url} keeps its data {where(url)}")
    typer.echo(f"and now holds {result.sessions_in_store} session(s).")
    typer.echo(f"See it again with: chatkeep sessions show {session.id}")
    typer.echo(f"  (from the project folder: python3 dev.py run sessions show {session.id})")
