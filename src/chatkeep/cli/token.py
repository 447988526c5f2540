"""``chatkeep token OWNER``: a signed bearer token for the server."""

from __future__ import annotations

from typing import Annotated

import typer

from chatkeep.cli.state import EXIT_USAGE, configured, fail
from chatkeep.config_values import parse_duration
from chatkeep.core.clock import Clock, SystemClock
from chatkeep.server.auth import mint_token

NO_SECRET = "no token secret is configured: set CHATKEEP_TOKEN_SECRET (or --token-secret)"


def token(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(help="The owner the token stands for.")],
    ttl: Annotated[
        str, typer.Option(help="How long the token is valid (seconds, or like 20m, 1h, 7d).")
    ] = "1h",
) -> None:
    """Print a bearer token for OWNER, signed with the configured token secret."""
    typer.echo(issue(ctx, owner, ttl, SystemClock()))


def issue(ctx: typer.Context, owner: str, ttl: str, clock: Clock) -> str:
    secret = configured(ctx).server.token_secret
    if secret is None:
        fail(NO_SECRET, EXIT_USAGE)
    try:
        lifetime = parse_duration(ttl)
    except ValueError:
        fail(f"--ttl: {ttl!r} is not a duration (seconds, or like 20m, 1h)", EXIT_USAGE)
    try:
        return mint_token(secret, owner, clock.now() + lifetime)
    except ValueError as exc:
        fail(f"OWNER: {exc}", EXIT_USAGE)
