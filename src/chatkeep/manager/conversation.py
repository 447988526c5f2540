"""A handle on one session whose every change is stored at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from chatkeep.core.models import JSON, Content, Message, NewMessage, Persistence, Role, Session
from chatkeep.errors import InvalidInputError
from chatkeep.manager.sessions import CLIENT_HISTORY

if TYPE_CHECKING:
    from chatkeep.manager.sessions import SessionOperations


class Conversation:
    """``conv = await manager.open(session_id)``, then ``await conv.add("user", "hi")``.

    Nothing is buffered: each method stores its change before it returns (there is no
    "save" step), and :attr:`session` is the record as stored after the last change
    made through this handle. Changes made elsewhere show after :meth:`refresh`.
    """

    def __init__(self, manager: SessionOperations, session: Session) -> None:
        self._manager = manager
        self._session = session

    @property
    def id(self) -> str:
        return self._session.id

    @property
    def session(self) -> Session:
        return self._session

    def __repr__(self) -> str:
        s = self._session
        return f"<Conversation {s.id} {s.persistence.value} messages={s.message_count}>"

    async def refresh(self) -> Session:
        self._session = await self._manager.get_session(self.id)
        return self._session

    async def add(
        self,
        role: Role | str,
        content: Content,
        *,
        id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, JSON] | None = None,
    ) -> Message:
        """Store one message and return it as stored (with its ``seq``).

        ``id`` is an idempotency key: adding the same id again returns the stored message.
        """
        message = NewMessage(role=role, content=content, id=id, user_id=user_id, metadata=metadata)
        return (await self.extend([message]))[0]

    async def extend(self, messages: Sequence[NewMessage]) -> list[Message]:
        """Store several messages at once (all or none)."""
        if self._session.persistence is Persistence.CLIENT:
            raise InvalidInputError("persistence", CLIENT_HISTORY)
        result = await self._manager.append(self.id, messages)
        self._session = result.session
        return result.messages

    async def messages(
        self,
        *,
        last: int | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """Stored messages in ``seq`` order (see ``Store.get_messages``)."""
        return await self._manager.get_messages(
            self.id, last=last, after_seq=after_seq, before_seq=before_seq, limit=limit
        )

    async def set_metadata(self, values: Mapping[str, JSON], *, replace: bool = False) -> Session:
        """Merge ``values`` into the metadata (a ``None`` value removes that key), or
        with ``replace`` make them the whole metadata."""
        key = "metadata" if replace else "merge_metadata"
        return await self.update({key: values})

    async def tag(self, *tags: str) -> Session:
        return await self.update({"add_tags": set(tags)})

    async def untag(self, *tags: str) -> Session:
        return await self.update({"remove_tags": set(tags)})

    async def update(
        self, changes: Mapping[str, object], *, expected_version: int | None = None
    ) -> Session:
        self._session = await self._manager.update_session(self.id, changes, expected_version)
        return self._session

    async def touch(self) -> Session:
        """Record activity now: the session's expiry moves to now + its ttl."""
        self._session = await self._manager.touch(self.id)
        return self._session

    async def extend_expiration(self, by: timedelta) -> Session:
        self._session = await self._manager.extend_expiration(self.id, by)
        return self._session

    async def pop(self) -> Message | None:
        """Remove and return the newest message."""
        message = await self._manager.pop_message(self.id)
        await self.refresh()
        return message

    async def clear(self) -> int:
        """Remove every message; returns how many there were."""
        removed = await self._manager.clear_messages(self.id)
        await self.refresh()
        return removed

    async def delete(self) -> bool:
        """Delete the session; the handle is of no further use."""
        return await self._manager.delete_session(self.id)
