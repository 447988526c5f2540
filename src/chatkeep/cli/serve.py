"""``chatkeep serve``: the REST server on uvicorn, over the configured stores."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer
import uvicorn

from chatkeep.cli.state import EXIT_FAILURE, EXIT_USAGE, configured, fail, reported_errors, state
from chatkeep.config import Config, ServerConfig
from chatkeep.server import build_manager, create_app

NOT_LOOPBACK = (
    "refusing to bind to {host}: without authentication the server only binds to "
    "loopback addresses (127.0.0.1, ::1, localhost); set CHATKEEP_API_KEYS or "
    "CHATKEEP_TOKEN_SECRET, or give --insecure-bind"
)
INSECURE = (
    "warning: serving {host} without authentication (--insecure-bind): anyone who can "
    "reach it can read, change and delete every session"
)


@dataclass(frozen=True, slots=True)
class BindCheck:
    allowed: bool
    message: str | None = None
    """Why it is refused, or the warning to print when it is allowed."""


def check_bind(server: ServerConfig) -> BindCheck:
    """Loopback, or authentication on: allowed. Otherwise only with ``insecure_bind``."""
    if server.loopback or server.auth_enabled:
        return BindCheck(allowed=True)
    if server.insecure_bind:
        return BindCheck(allowed=True, message=INSECURE.format(host=server.host))
    return BindCheck(allowed=False, message=NOT_LOOPBACK.format(host=server.host))


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="The address to bind to (env: API_HOST).", show_default=False)
    ] = None,
    port: Annotated[
        str | None, typer.Option(help="The port to listen on (env: API_PORT).", show_default=False)
    ] = None,
    insecure_bind: Annotated[
        bool,
        typer.Option(
            "--insecure-bind",
            help="Bind beyond loopback without authentication (env: CHATKEEP_INSECURE_BIND).",
        ),
    ] = False,
) -> None:
    """Serve the REST API and the web page (default http://127.0.0.1:8000)."""
    given = {"host": host, "port": port, "insecure_bind": "true" if insecure_bind else None}
    state(ctx).overrides.update({name: v for name, v in given.items() if v is not None})
    config = configured(ctx)
    bind = check_bind(config.server)
    if not bind.allowed:
        fail(bind.message or "refusing to bind", EXIT_USAGE)
    if bind.message is not None:
        typer.echo(bind.message, err=True)
    with reported_errors():
        asyncio.run(_check_stores(config))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=config.server.host,
            port=config.server.port,
            lifespan="on",
            log_level="info",
        )
    )
    typer.echo(f"chatkeep is serving {config.server.url} (store: {config.store.url})")
    server.run()
    if not server.started:
        fail(f"the server could not start on {config.server.url}", EXIT_FAILURE)


async def _check_stores(config: Config) -> None:
    """Open the configured stores once and close them, so that a store that cannot be
    opened stops the command with one line (the app opens them again on start-up)."""
    manager = await build_manager(config)
    await manager.close()
