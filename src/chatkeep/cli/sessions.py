"""``chatkeep sessions list|show|delete``."""

from __future__ import annotations

from typing import Annotated

import typer

from chatkeep.cli.render import (
    console,
    json_line,
    messages_table,
    session_json,
    session_table,
    sessions_table,
)
from chatkeep.cli.state import configured, with_store
from chatkeep.core.models import Message, Session
from chatkeep.core.query import MAX_PAGE, SessionFilter, SessionPage
from chatkeep.errors import SessionNotFoundError
from chatkeep.stores import Store

app = typer.Typer(help="List, show and delete sessions.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")]
SessionId = Annotated[str, typer.Argument(metavar="ID", help="The session's id.")]


@app.command("list")
def list_sessions(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option(help="Only this owner's sessions.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Only sessions with this tag (repeatable: all).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="Sessions per page.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Where to continue: the cursor a previous page printed.")
    ] = None,
    include_expired: Annotated[
        bool, typer.Option("--include-expired", help="Also list expired sessions.")
    ] = False,
    sort: Annotated[
        str,
        typer.Option(
            help="created_at, updated_at or last_activity_at; a leading '-' for newest first."
        ),
    ] = "-last_activity_at",
    as_json: JsonFlag = False,
) -> None:
    """List sessions, most recently active first."""
    flt = SessionFilter(owner=owner, tags=frozenset(tag or ()), include_expired=include_expired)

    async def action(store: Store) -> SessionPage:
        return await store.list_sessions(flt, sort, limit, cursor)

    page = with_store(ctx, action)
    if as_json:
        for session in page.sessions:
            json_line(session_json(session))
        if page.next_cursor:
            typer.echo(f"next page: --cursor {page.next_cursor}", err=True)
        return
    if not page.sessions:
        typer.echo("no sessions")
        return
    console().print(sessions_table(page.sessions))
    if page.next_cursor:
        typer.echo(f"next page: --cursor {page.next_cursor}")


@app.command()
def show(
    ctx: typer.Context,
    session_id: SessionId,
    messages: Annotated[
        int, typer.Option("--messages", "-n", min=0, help="How many of the last messages.")
    ] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Show a session and its last messages."""

    async def action(store: Store) -> tuple[Session, list[Message]]:
        session = await store.get_session(session_id)
        recent = await store.get_messages(session_id, last=messages) if messages else []
        return session, recent

    session, recent = with_store(ctx, action)
    if as_json:
        json_line(session_json(session, recent))
        return
    console().print(session_table(session))
    if recent:
        console().print(messages_table(recent))


@app.command()
def delete(
    ctx: typer.Context,
    session_id: SessionId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a session and all its messages."""
    configured(ctx)
    if not yes:
        typer.confirm(f"Delete session {session_id} and all its messages?", abort=True)

    async def action(store: Store) -> None:
        if not await store.delete_session(session_id):
            raise SessionNotFoundError(session_id)

    with_store(ctx, action)
    typer.echo(f"deleted session {session_id}")
