"""The SQLite contenders: raw ``sqlite3``, chatkeep, the Agents SDK and LangChain.

Each works on a file of its own in a fresh directory, in WAL mode with SQLite's default
``synchronous=full`` (chatkeep's default too): a message acknowledged is on disk.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.compare.contender import Backend, Contender, Entry
from bench.compare.ours import ChatkeepStore
from bench.compare.peers import AgentsItems, LangChainHistories


class RawSqlite:
    """sqlite3 blocking the caller: ``BEGIN; INSERT; COMMIT`` per message, one table."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute(
            "CREATE TABLE messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            "content TEXT NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID"
        )
        self.seq: dict[str, int] = {}

    async def prepare(self, keys: Sequence[str]) -> None:
        self.seq = dict.fromkeys(keys, 0)

    async def append(self, key: str, text: str) -> None:
        seq = self.seq[key] = self.seq[key] + 1
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO messages VALUES (?, ?, ?)", (key, seq, text))
        self.conn.execute("COMMIT")

    async def read(self, key: str, last: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT content FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
            (key, last),
        ).fetchall()
        return [row[0] for row in reversed(rows)]

    async def stored(self, key: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT content FROM messages WHERE session_id = ? ORDER BY seq", (key,)
        ).fetchall()
        return [row[0] for row in rows]

    async def close(self) -> None:
        self.conn.close()


@asynccontextmanager
async def directory() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="chatkeep-bench-") as tmp:
        yield Path(tmp)


async def open_raw(place: Path) -> Contender:
    return RawSqlite(place / "raw.db")


async def open_chatkeep(place: Path) -> Contender:
    return await ChatkeepStore.open(f"sqlite:///{place / 'chatkeep.db'}")


async def open_agents(place: Path) -> Contender:
    from agents import SQLiteSession

    path = place / "agents.db"
    return AgentsItems(lambda key: SQLiteSession(key, path), close=_close_sync)


async def open_langchain(place: Path) -> Contender:
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{place / 'langchain.db'}")
    return LangChainHistories(
        lambda key: SQLChatMessageHistory(session_id=key, connection=engine),
        closing=engine.dispose,
    )


async def _close_sync(session: Any) -> None:
    session.close()


async def version() -> str:
    return f"SQLite {sqlite3.sqlite_version}"


BACKEND = Backend(
    name="sqlite",
    title="SQLite",
    place=directory,
    entries=(
        Entry(
            "raw sqlite3",
            "raw",
            "sqlite3",
            open_raw,
            "BEGIN; INSERT; COMMIT per message, blocking the event loop",
        ),
        Entry("chatkeep", "chatkeep", "chatkeep", open_chatkeep, "sqlite:/// store"),
        Entry(
            "Agents SDK SQLiteSession",
            "peer",
            "openai-agents",
            open_agents,
            "sqlite3 on a worker thread (asyncio.to_thread)",
        ),
        Entry(
            "LangChain SQLChatMessageHistory",
            "peer",
            "langchain-community",
            open_langchain,
            "SQLAlchemy async engine on aiosqlite; a read fetches the whole history",
        ),
    ),
    version=version,
)
