"""The peers' session interfaces, each behind the contender protocol.

Both peers hand out one object per conversation: the objects are made (and their
tables created) in ``prepare``, before any timing, and share one engine or client.
Their packages are imported by the backend modules' open functions, never here, so
that a missing package skips only its own contender.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Make = Callable[[str], Any]
Closing = Callable[[], Awaitable[object]]


async def _nothing() -> None:
    return None


class AgentsItems:
    """An OpenAI Agents SDK ``Session``: ``add_items`` and ``get_items(limit=...)``; an
    item is ``{"role": "user", "content": text}``."""

    def __init__(
        self,
        make: Make,
        *,
        close: Callable[[Any], Awaitable[object]] | None = None,
        closing: Closing = _nothing,
    ) -> None:
        self.make = make
        self.close_one = close
        self.closing = closing
        self.sessions: dict[str, Any] = {}

    async def prepare(self, keys: Sequence[str]) -> None:
        for key in keys:
            session = self.sessions[key] = self.make(key)
            await session.get_items(limit=1)  # creates the tables where the SDK does so lazily

    async def append(self, key: str, text: str) -> None:
        await self.sessions[key].add_items([{"role": "user", "content": text}])

    async def read(self, key: str, last: int) -> list[str]:
        return [item["content"] for item in await self.sessions[key].get_items(limit=last)]

    async def stored(self, key: str) -> list[str]:
        return [item["content"] for item in await self.sessions[key].get_items()]

    async def close(self) -> None:
        try:
            if self.close_one is not None:
                for session in self.sessions.values():
                    await self.close_one(session)
        finally:
            await self.closing()


class LangChainHistories:
    """A LangChain ``BaseChatMessageHistory``: ``aadd_messages`` and ``aget_messages``.
    LangChain has no way to read only the newest messages: a read fetches the whole
    history and keeps the last ones."""

    def __init__(self, make: Make, *, closing: Closing = _nothing, uuid_ids: bool = False) -> None:
        self.make = make
        self.closing = closing
        self.uuid_ids = uuid_ids
        self.histories: dict[str, Any] = {}

    async def prepare(self, keys: Sequence[str]) -> None:
        for key in keys:
            name = str(uuid.uuid5(uuid.NAMESPACE_URL, key)) if self.uuid_ids else key
            history = self.histories[key] = self.make(name)
            await history.aget_messages()  # creates the table where LangChain does so lazily

    async def append(self, key: str, text: str) -> None:
        from langchain_core.messages import HumanMessage

        await self.histories[key].aadd_messages([HumanMessage(content=text)])

    async def read(self, key: str, last: int) -> list[str]:
        messages = await self.histories[key].aget_messages()
        return [str(m.content) for m in messages[-last:]]

    async def stored(self, key: str) -> list[str]:
        return [str(m.content) for m in await self.histories[key].aget_messages()]

    async def close(self) -> None:
        await self.closing()
