"""What every command shares: the configuration options, the open store, and error reporting.

The configuration options are generated from :data:`chatkeep.config.SETTINGS`, so the
option list is written once; their values are handed to :meth:`Config.from_env` as
overrides, which is where the environment is read and everything is validated.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, NoReturn, TypeVar

import typer

from chatkeep.config import SETTINGS, SETTINGS_BY_NAME, Config
from chatkeep.errors import ChatkeepError, ConfigurationError, InvalidInputError
from chatkeep.stores import Store, open_store

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_USAGE = 2
CONFIG_PANEL = "Configuration (also settable by environment variable)"


@dataclass(slots=True)
class CliState:
    """The root options of one invocation; the configuration is built when first needed."""

    overrides: dict[str, str] = field(default_factory=dict)
    _config: Config | None = None

    def config(self) -> Config:
        if self._config is None:
            self._config = Config.from_env(**self.overrides)
        return self._config


def config_options(func: Callable[..., None]) -> Callable[..., None]:
    """Give ``func(ctx, **settings)`` one ``--option`` per configuration setting."""
    params = [p for p in inspect.signature(func).parameters.values() if p.kind != p.VAR_KEYWORD]
    annotations: dict[str, object] = {p.name: p.annotation for p in params}
    for setting in SETTINGS:
        option = typer.Option(
            setting.option,
            help=f"{setting.help} (env: {', '.join(setting.env_names)})",
            metavar=setting.kind.metavar,
            show_default=False,
            rich_help_panel=CONFIG_PANEL,
        )
        annotation = Annotated[str | None, option]
        annotations[setting.name] = annotation
        params.append(
            inspect.Parameter(
                setting.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    func.__annotations__ = annotations
    return func


def state(ctx: typer.Context) -> CliState:
    found = ctx.find_object(CliState)
    if found is None:
        raise RuntimeError("expected the chatkeep root command to have run, got no CLI state")
    return found


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print one line to stderr and stop with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn chatkeep's errors into one line on stderr and an exit code (2: bad input)."""
    try:
        yield
    except ConfigurationError as exc:
        setting = SETTINGS_BY_NAME.get(exc.name)
        name = setting.option if setting is not None else exc.name
        fail(f"{name}: {exc.reason}", EXIT_USAGE)
    except InvalidInputError as exc:
        fail(str(exc), EXIT_USAGE)
    except ChatkeepError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))


def configured(ctx: typer.Context) -> Config:
    """The configuration; a bad value stops the command with one line and exit code 2."""
    with reported_errors():
        return state(ctx).config()


def with_store(ctx: typer.Context, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store, run ``action`` on it, close it; errors become exit codes."""
    config = configured(ctx)
    with reported_errors():
        return asyncio.run(_with_store(config, action))


async def _with_store(config: Config, action: Callable[[Store], Awaitable[T]]) -> T:
    async with open_store(
        config.store.url, defaults=config.session_defaults(), limits=config.store.limits()
    ) as store:
        return await action(store)
