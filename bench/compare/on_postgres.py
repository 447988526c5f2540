"""The PostgreSQL contenders: raw asyncpg, chatkeep, the Agents SDK and langchain-postgres.

The server is ``CHATKEEP_TEST_POSTGRES_URL`` (default the local ``test`` database). Each
repetition works in a fresh schema, dropped at the end; every contender's tables are
made in it (``search_path``). ``fsync`` and ``synchronous_commit`` stay as the server has
them, the same for all.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bench.compare.contender import Backend, Contender, Entry
from bench.compare.ours import ChatkeepStore, with_option
from bench.compare.peers import AgentsItems, LangChainHistories

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("CHATKEEP_TEST_POSTGRES_URL", DEFAULT_URL)


@dataclass(frozen=True, slots=True)
class Schema:
    url: str
    name: str


async def _no_reset(_: Any) -> None:
    return None


class RawAsyncpg:
    """An asyncpg pool (no reset query, as chatkeep's); one autocommitted INSERT per message."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.seq: dict[str, int] = {}

    @classmethod
    async def open(cls, place: Schema) -> RawAsyncpg:
        import asyncpg

        pool = await asyncpg.create_pool(
            place.url,
            min_size=1,
            max_size=10,
            reset=_no_reset,
            server_settings={"search_path": place.name},
        )
        await pool.execute(
            "CREATE TABLE raw_messages (session_id text NOT NULL, seq integer NOT NULL, "
            "content text NOT NULL, PRIMARY KEY (session_id, seq))"
        )
        return cls(pool)

    async def prepare(self, keys: Sequence[str]) -> None:
        self.seq = dict.fromkeys(keys, 0)

    async def append(self, key: str, text: str) -> None:
        seq = self.seq[key] = self.seq[key] + 1
        await self.pool.execute("INSERT INTO raw_messages VALUES ($1, $2, $3)", key, seq, text)

    async def read(self, key: str, last: int) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT content FROM raw_messages WHERE session_id = $1 ORDER BY seq DESC LIMIT $2",
            key,
            last,
        )
        return [row[0] for row in reversed(rows)]

    async def stored(self, key: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT content FROM raw_messages WHERE session_id = $1 ORDER BY seq", key
        )
        return [row[0] for row in rows]

    async def close(self) -> None:
        await self.pool.close()


@asynccontextmanager
async def schema() -> AsyncIterator[Schema]:
    import asyncpg

    url = server_url()
    name = f"bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE SCHEMA {name}")
        yield Schema(url, name)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await admin.close()


async def open_raw(place: Schema) -> Contender:
    return await RawAsyncpg.open(place)


async def open_chatkeep(place: Schema) -> Contender:
    return await ChatkeepStore.open(with_option(place.url, "schema", place.name))


def _sqlalchemy_url(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


async def open_agents(place: Schema) -> Contender:
    from agents.extensions.memory import SQLAlchemySession
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(
        _sqlalchemy_url(place.url),
        connect_args={"server_settings": {"search_path": place.name}},
    )
    return AgentsItems(
        lambda key: SQLAlchemySession(key, engine=engine, create_tables=True),
        closing=engine.dispose,
    )


async def open_langchain(place: Schema) -> Contender:
    import psycopg
    from langchain_postgres import PostgresChatMessageHistory

    conn = await psycopg.AsyncConnection.connect(place.url, options=f"-c search_path={place.name}")
    await PostgresChatMessageHistory.acreate_tables(conn, "chat_history")
    return LangChainHistories(
        lambda key: PostgresChatMessageHistory("chat_history", key, async_connection=conn),
        closing=conn.close,
        uuid_ids=True,
    )


async def version() -> str:
    import asyncpg

    conn = await asyncpg.connect(server_url())
    try:
        return f"PostgreSQL {await conn.fetchval('SHOW server_version')}"
    finally:
        await conn.close()


BACKEND = Backend(
    name="postgresql",
    title="PostgreSQL",
    place=schema,
    entries=(
        Entry("raw asyncpg", "raw", "asyncpg", open_raw, "one autocommitted INSERT per message"),
        Entry("chatkeep", "chatkeep", "chatkeep", open_chatkeep, "postgresql:// store"),
        Entry(
            "Agents SDK SQLAlchemySession",
            "peer",
            "openai-agents",
            open_agents,
            "SQLAlchemy async engine on asyncpg",
        ),
        Entry(
            "langchain-postgres PostgresChatMessageHistory",
            "peer",
            "langchain-postgres",
            open_langchain,
            "one psycopg async connection, as its documentation shows; "
            "a read fetches the whole history",
        ),
    ),
    version=version,
)
