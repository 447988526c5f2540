"""The ``chatkeep`` command: options become a :class:`~chatkeep.config.Config`, commands
call the library."""

from __future__ import annotations

import typer

from chatkeep.cli import sessions
from chatkeep.cli.demo import demo
from chatkeep.cli.maintenance import cleanup, migrate, stats
from chatkeep.cli.serve import serve
from chatkeep.cli.state import CliState, config_options
from chatkeep.cli.token import token
from chatkeep.cli.transfer import export, import_

app = typer.Typer(
    name="chatkeep",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
@config_options
def root(ctx: typer.Context, **settings: str | None) -> None:
    """Keep chat and AI-agent conversations alive: inspect, export and import sessions.

    Every configuration option can also be set by environment variable; an option given
    on the command line wins over the environment. See docs/cli.md.
    """
    ctx.obj = CliState({name: value for name, value in settings.items() if value is not None})


app.add_typer(sessions.app, name="sessions")
app.command("export")(export)
app.command("import")(import_)
app.command()(cleanup)
app.command()(stats)
app.command()(migrate)
app.command()(demo)
app.command()(serve)
app.command()(token)


def main() -> None:
    """The console script's entry point."""
    app()
