"""The PostgreSQL schema as versioned migrations, applied when a store opens.

Each ``NNN_name.sql`` file of this package is one migration; version ``NNN``. The table
``schema_version`` of the store's schema records the versions applied. :func:`migrate`
applies the missing ones in order, in one transaction, holding an advisory lock named
after the schema, so that several processes opening the same store at once apply each
migration exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from chatkeep.errors import StoreUnavailableError

_FILE = re.compile(r"(\d{3})_([a-z0-9_]+)\.sql")

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped, in version order."""
    found = []
    for entry in files(__name__).iterdir():
        named = _FILE.fullmatch(entry.name)
        if named:
            found.append(Migration(int(named[1]), named[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return tuple(found)


def latest() -> int:
    """The schema version this chatkeep creates."""
    return migrations()[-1].version


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def migrate(conn: Any, schema: str) -> list[int]:
    """Bring ``schema`` (created if missing) up to :func:`latest` on the asyncpg
    connection ``conn``; returns the versions applied now."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", schema)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}")
        await conn.execute(VERSION_TABLE)
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_version")}
        newest = max(done, default=0)
        if newest > latest():
            raise StoreUnavailableError(
                f"PostgreSQL schema {schema!r} has chatkeep schema version {newest}; this "
                f"chatkeep knows versions up to {latest()} (upgrade chatkeep to open it)"
            )
        applied = []
        for migration in migrations():
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
        return applied
