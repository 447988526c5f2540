"""The Redis contenders: raw redis-py, chatkeep, the Agents SDK and LangChain.

The server is ``CHATKEEP_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). Each
repetition works under a fresh key prefix, whose keys are deleted at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench.compare.contender import Backend, Contender, Entry
from bench.compare.ours import ChatkeepStore, with_option
from bench.compare.peers import AgentsItems, LangChainHistories

DEFAULT_URL = "redis://127.0.0.1:6379/0"
WINDOW = 1000
TTL = timedelta(days=1)


def server_url() -> str:
    return os.environ.get("CHATKEEP_TEST_REDIS_URL", DEFAULT_URL)


@dataclass(frozen=True, slots=True)
class Prefix:
    url: str
    name: str


class RawRedis:
    """redis-py asyncio, one list per session: RPUSH + LTRIM + EXPIRE in one pipeline."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def prepare(self, keys: Sequence[str]) -> None:
        return None

    async def append(self, key: str, text: str) -> None:
        name = self.prefix + key
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(name, text)
        pipe.ltrim(name, -WINDOW, -1)
        pipe.expire(name, int(TTL.total_seconds()))
        await pipe.execute()

    async def read(self, key: str, last: int) -> list[str]:
        return [item.decode() for item in await self.client.lrange(self.prefix + key, -last, -1)]

    async def stored(self, key: str) -> list[str]:
        return [item.decode() for item in await self.client.lrange(self.prefix + key, 0, -1)]

    async def close(self) -> None:
        await self.client.aclose()


@asynccontextmanager
async def prefix() -> AsyncIterator[Prefix]:
    from redis import asyncio as aioredis

    url = server_url()
    name = f"bench_{secrets.token_hex(6)}"
    try:
        yield Prefix(url, name)
    finally:
        client = aioredis.Redis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{name}*", count=1000)]
            for start in range(0, len(keys), 1000):
                await client.unlink(*keys[start : start + 1000])
        finally:
            await client.aclose()


async def open_raw(place: Prefix) -> Contender:
    from redis import asyncio as aioredis

    return RawRedis(aioredis.Redis.from_url(place.url), f"{place.name}.raw:")


async def open_chatkeep(place: Prefix) -> Contender:
    return await ChatkeepStore.open(with_option(place.url, "prefix", place.name))


async def open_agents(place: Prefix) -> Contender:
    from agents.extensions.memory import RedisSession
    from redis import asyncio as aioredis

    client = aioredis.Redis.from_url(place.url)
    return AgentsItems(
        lambda key: RedisSession(key, redis_client=client, key_prefix=f"{place.name}.agents"),
        closing=client.aclose,
    )


async def open_langchain(place: Prefix) -> Contender:
    from langchain_community.chat_message_histories import RedisChatMessageHistory

    clients: list[Any] = []

    def make(key: str) -> Any:
        history = RedisChatMessageHistory(key, url=place.url, key_prefix=f"{place.name}.lc:")
        clients.append(history.redis_client)
        return history

    async def closing() -> None:
        for client in clients:
            client.close()

    return LangChainHistories(make, closing=closing)


async def version() -> str:
    from redis import asyncio as aioredis

    client = aioredis.Redis.from_url(server_url())
    try:
        return f"Redis {(await client.info('server'))['redis_version']}"
    finally:
        await client.aclose()


BACKEND = Backend(
    name="redis",
    title="Redis",
    place=prefix,
    entries=(
        Entry(
            "raw redis-py",
            "raw",
            "redis",
            open_raw,
            "RPUSH + LTRIM + EXPIRE in one pipeline per message",
        ),
        Entry("chatkeep", "chatkeep", "chatkeep", open_chatkeep, "redis:// store"),
        Entry(
            "Agents SDK RedisSession",
            "peer",
            "openai-agents",
            open_agents,
            "redis-py asyncio, one shared client",
        ),
        Entry(
            "LangChain RedisChatMessageHistory",
            "peer",
            "langchain-community",
            open_langchain,
            "synchronous redis-py on the default executor (its async methods); "
            "a read fetches the whole history",
        ),
    ),
    version=version,
)
