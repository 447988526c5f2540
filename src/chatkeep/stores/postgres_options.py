"""The URL of a PostgreSQL store: chatkeep's own options, and what goes to asyncpg."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chatkeep.errors import ConfigurationError

DRIVER_OPTIONS = frozenset(
    {
        "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword",
        "sslnegotiation", "ssl_min_protocol_version", "ssl_max_protocol_version",
        "passfile", "target_session_attrs", "krbsrvname", "gsslib", "service",
        "application_name", "host", "port", "user", "password", "dbname", "database",
    }
)  # fmt: skip
"""URL options passed on to asyncpg as they are."""

_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    """chatkeep's own URL options of ``postgresql://...?...``."""

    schema: str = "public"
    pool_min: int = 1
    """Connections opened with the pool; as many stay with the store between operations."""
    pool_max: int = 10
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    """Seconds a statement may wait for the server before the call fails."""
    cache_sessions: int = 1024
    """Session rows kept to check instead of read again (0: none)."""
    cache_messages: int = 100
    """Newest messages kept with each of them."""

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> PostgresOptions:
        known = (
            "schema",
            "pool_min",
            "pool_max",
            "connect_timeout",
            "command_timeout",
            "cache_sessions",
            "cache_messages",
        )
        unknown = sorted(set(options) - set(known) - DRIVER_OPTIONS)
        if unknown:
            raise ConfigurationError(
                unknown[0], f"is not an option of postgresql:// (known: {', '.join(known)})"
            )
        schema = options.get("schema", "public")
        if not _SCHEMA.fullmatch(schema):
            raise ConfigurationError(
                "schema", f"{schema!r} is not a schema name (letters, digits, _; at most 63)"
            )
        low = _number(options, "pool_min", 1, int)
        if low < 0:
            raise ConfigurationError("pool_min", "must be a number of connections (0 or more)")
        high = _number(options, "pool_max", max(10, low), int)
        if high < max(1, low):
            raise ConfigurationError("pool_max", f"must be at least 1 and pool_min ({low})")
        timeout = _seconds(options, "connect_timeout", 10.0)
        command_timeout = _seconds(options, "command_timeout", 60.0)
        sessions = _number(options, "cache_sessions", 1024, int)
        if sessions < 0:
            raise ConfigurationError("cache_sessions", "must be a number of sessions (0 or more)")
        messages = _number(options, "cache_messages", 100, int)
        if messages < 0:
            raise ConfigurationError("cache_messages", "must be a number of messages (0 or more)")
        return cls(schema, low, high, timeout, command_timeout, sessions, messages)


N = TypeVar("N", int, float)


def _number(options: Mapping[str, str], name: str, default: N, kind: type[N]) -> N:
    text = options.get(name)
    if text is None:
        return default
    try:
        return kind(text)
    except ValueError:
        raise ConfigurationError(name, f"{text!r} is not a number") from None


def _seconds(options: Mapping[str, str], name: str, default: float) -> float:
    seconds = _number(options, name, default, float)
    if not 0 < seconds < float("inf"):
        raise ConfigurationError(name, "must be a positive number of seconds")
    return seconds


def driver_dsn(url: str) -> str:
    """``url`` without chatkeep's own options, as asyncpg takes it."""
    parts = urlsplit(url)
    kept = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in DRIVER_OPTIONS
    ]
    return urlunsplit(parts._replace(query=urlencode(kept)))
