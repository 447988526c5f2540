"""``chatkeep export`` and ``chatkeep import``: sessions as streaming JSONL."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO, TextIO

import typer
from rich.progress import Progress, TaskID

from chatkeep.cli.render import progress
from chatkeep.cli.state import EXIT_FAILURE, configured, reported_errors, with_store
from chatkeep.core.query import SessionFilter
from chatkeep.errors import CorruptDataError
from chatkeep.stores import MergeStrategy, Store

STDIO = "-"


def export(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="[FILE]", help="Where to write; '-' for stdout.")
    ] = STDIO,
    owner: Annotated[str | None, typer.Option(help="Only this owner's sessions.")] = None,
    include_expired: Annotated[
        bool, typer.Option("--include-expired", help="Also export expired sessions.")
    ] = False,
) -> None:
    """Export sessions with their messages as JSONL."""
    flt = SessionFilter(owner=owner, include_expired=include_expired)
    configured(ctx)
    if file == STDIO:
        with_store(ctx, lambda store: _export(store, flt, sys.stdout, None))
        return
    with reported_errors(), _replacing(Path(file)) as out, progress() as bar:
        count = with_store(ctx, lambda store: _export(store, flt, out, bar))
    typer.echo(f"exported {count} sessions to {file}", err=True)


@contextmanager
def _replacing(target: Path) -> Iterator[TextIO]:
    """A text file that replaces ``target`` only once it is complete and on disk."""
    partial = target.with_name(f".{target.name}.part")
    try:
        with partial.open("w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


async def _export(store: Store, flt: SessionFilter, out: TextIO, bar: Progress | None) -> int:
    """Write the export to ``out``; returns the number of sessions written."""
    task = None if bar is None else bar.add_task("exporting", total=await _expected(store, flt))
    lines = aiter(store.export_sessions(flt))
    out.write(await anext(lines))  # the header
    count = 0
    async for line in lines:
        out.write(line)
        count += 1
        if bar is not None and task is not None:
            bar.advance(task)
    return count


async def _expected(store: Store, flt: SessionFilter) -> int | None:
    """How many sessions an export will hold, when the store's counts can tell."""
    if flt.owner is not None:
        return None
    stats = await store.stats()
    return stats.total_sessions if flt.include_expired else stats.active_sessions


def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="A JSONL export; '-' for stdin.")],
    strategy: Annotated[
        MergeStrategy,
        typer.Option(help="What to do with a session whose id is stored already."),
    ] = MergeStrategy.SKIP_EXISTING,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count, but change nothing.")
    ] = False,
) -> None:
    """Import sessions from a JSONL export."""
    configured(ctx)
    if file == STDIO:
        report = with_store(
            ctx, lambda store: store.import_sessions(sys.stdin, strategy=strategy, dry_run=dry_run)
        )
    else:
        path = Path(file)
        with reported_errors(), path.open("rb") as source, progress(in_bytes=True) as bar:
            lines = _lines(source, path, bar, bar.add_task("importing", total=path.stat().st_size))
            report = with_store(
                ctx, lambda store: store.import_sessions(lines, strategy=strategy, dry_run=dry_run)
            )
    counts = (report.restored, report.skipped, report.failed)
    if report.dry_run:
        typer.echo("dry run, nothing changed: would restore {}, skip {}, fail {}".format(*counts))
    else:
        typer.echo("restored {}, skipped {}, failed {}".format(*counts))
    for error in report.errors:
        typer.echo(f"  {error}", err=True)
    if report.failed:
        raise typer.Exit(EXIT_FAILURE)


def _lines(source: BinaryIO, path: Path, bar: Progress, task: TaskID) -> Iterator[str]:
    for number, raw in enumerate(source, 1):
        bar.advance(task, len(raw))
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptDataError(f"{path} line {number}", "not UTF-8 text") from None
