"""chatkeep itself, behind the contender protocol."""

from __future__ import annotations

from collections.abc import Sequence

import chatkeep


class ChatkeepStore:
    """A chatkeep store; sessions are created with the workload's keys as their ids."""

    def __init__(self, store: chatkeep.Store) -> None:
        self.store = store

    @classmethod
    async def open(cls, url: str) -> ChatkeepStore:
        return cls(await chatkeep.open_store(url))

    async def prepare(self, keys: Sequence[str]) -> None:
        for key in keys:
            await self.store.create_session(id=key, owner="bench")

    async def append(self, key: str, text: str) -> None:
        await self.store.append_messages(key, chatkeep.NewMessage(role="user", content=text))

    async def read(self, key: str, last: int) -> list[str]:
        return [str(m.content) for m in await self.store.get_messages(key, last=last)]

    async def stored(self, key: str) -> list[str]:
        return [str(m.content) for m in await self.store.get_messages(key)]

    async def close(self) -> None:
        await self.store.close()


def with_option(url: str, name: str, value: str) -> str:
    """``url`` with one more query option."""
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"
