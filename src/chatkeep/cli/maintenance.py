"""``chatkeep cleanup``, ``chatkeep stats`` and ``chatkeep migrate``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from chatkeep.cli.render import console, json_line, stats_json, stats_table
from chatkeep.cli.state import with_store
from chatkeep.config_values import parse_duration
from chatkeep.stores import HealthReport, Store, StoreStats


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text, allow_zero=True)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration (seconds, or like 20m, 1h)") from None


def cleanup(
    ctx: typer.Context,
    older_than: Annotated[
        timedelta,
        typer.Option(
            parser=_duration,
            metavar="DURATION",
            show_default="0",
            help="Only remove sessions expired at least this long ago (seconds, or like 1h, 7d).",
        ),
    ] = timedelta(0),
) -> None:
    """Mark expired sessions and delete them with their messages."""

    async def action(store: Store) -> tuple[int, int]:
        expired = await store.expire_sessions()
        removed = await store.cleanup_expired_sessions(older_than)
        return len(expired), removed

    expired, removed = with_store(ctx, action)
    typer.echo(f"{expired} expired sessions, {removed} removed")


def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Count sessions and messages in the store."""

    async def action(store: Store) -> StoreStats:
        return await store.stats()

    result = with_store(ctx, action)
    if as_json:
        json_line(stats_json(result))
    else:
        console().print(stats_table(result))


def migrate(ctx: typer.Context) -> None:
    """Bring the store's schema up to date (a store also does this whenever it opens)."""

    async def action(store: Store) -> HealthReport:
        return await store.health()

    report = with_store(ctx, action)
    version = report.details.get("schema_version")
    shown = "" if version is None else f" (schema version {version})"
    typer.echo(f"{report.backend} store is up to date{shown}")
    if not report.healthy:
        for issue in report.issues:
            typer.echo(f"issue: {issue}", err=True)
        raise typer.Exit(1)
