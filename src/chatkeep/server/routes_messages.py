"""A session's messages: load (with its history), history, paged reads and appends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import Field

from chatkeep.core.models import Message, Persistence, Session
from chatkeep.manager import SessionManager
from chatkeep.server.deps import CallerDep, Manager, guard, owned
from chatkeep.server.errors import ERROR_RESPONSES
from chatkeep.server.wire import (
    MAX_INT,
    Envelope,
    MessageIn,
    MessageOut,
    SessionOut,
    Wire,
    message_out,
    session_out,
)

router = APIRouter(tags=["messages"], responses=ERROR_RESPONSES)

HISTORY_ON_CLIENT = (
    "Client-mode sessions keep their history on the client: it is always empty here."
)


class Loaded(Wire):
    session_id: str
    loaded: bool
    session: SessionOut
    conversation_history: list[MessageOut]
    history_on_client: bool = Field(description=HISTORY_ON_CLIENT)


class History(Wire):
    session_id: str
    history: list[MessageOut]
    count: int
    history_on_client: bool = Field(description=HISTORY_ON_CLIENT)


class MessagePage(Wire):
    session_id: str
    messages: list[MessageOut]
    count: int


class Stored(Wire):
    session_id: str
    messages: list[MessageOut] = Field(
        description="Each message sent, as stored (with its seq); a repeated clientId "
        "gives the message stored the first time."
    )
    added: int = Field(description="How many of them are new.")
    message_count: int
    last_seq: int
    history_on_client: bool = Field(description="Nothing is stored for client-mode sessions.")


async def _history(manager: SessionManager, session: Session) -> list[Message]:
    if session.persistence is Persistence.CLIENT:
        return []
    return await manager.get_messages(session.id)


@router.post(
    "/api/sessions/{session_id}/load",
    summary="Load a session: record activity and return its history",
    response_model=Envelope[Loaded],
)
async def load_session(session_id: str, manager: Manager, caller: CallerDep) -> Envelope[Loaded]:
    await guard(manager, caller, session_id)
    session = await manager.touch(session_id)
    history = await _history(manager, session)
    return Envelope(
        data=Loaded(
            session_id=session.id,
            loaded=True,
            session=session_out(session),
            conversation_history=[message_out(m) for m in history],
            history_on_client=session.persistence is Persistence.CLIENT,
        )
    )


@router.get(
    "/api/sessions/{session_id}/history",
    summary="A session's whole stored history",
    response_model=Envelope[History],
)
async def get_history(session_id: str, manager: Manager, caller: CallerDep) -> Envelope[History]:
    session = await owned(manager, caller, session_id)
    history = [message_out(m) for m in await _history(manager, session)]
    return Envelope(
        data=History(
            session_id=session.id,
            history=history,
            count=len(history),
            history_on_client=session.persistence is Persistence.CLIENT,
        )
    )


@router.get(
    "/api/sessions/{session_id}/messages",
    summary="Messages, paged by seq",
    response_model=Envelope[MessagePage],
)
@router.get(
    "/chat/api/sessions/{session_id}/messages/",
    summary="Messages, paged by seq (the /chat/api path)",
    response_model=Envelope[MessagePage],
)
async def get_messages(
    session_id: str,
    manager: Manager,
    caller: CallerDep,
    after_seq: Annotated[int | None, Query(alias="afterSeq", ge=0, le=MAX_INT)] = None,
    before_seq: Annotated[int | None, Query(alias="beforeSeq", ge=1, le=MAX_INT)] = None,
    last: Annotated[int | None, Query(ge=1, le=MAX_INT, description="Only the newest N.")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> Envelope[MessagePage]:
    """Messages in seq order: those after `afterSeq` and before `beforeSeq`, the newest
    `last` of them, at most `limit`."""
    await guard(manager, caller, session_id)
    messages = await manager.get_messages(
        session_id, last=last, after_seq=after_seq, before_seq=before_seq, limit=limit
    )
    out = [message_out(m) for m in messages]
    return Envelope(data=MessagePage(session_id=session_id, messages=out, count=len(out)))


@router.post(
    "/api/sessions/{session_id}/messages",
    summary="Append one message or a list of them",
    status_code=201,
    response_model=Envelope[Stored],
)
async def append_messages(
    session_id: str,
    manager: Manager,
    caller: CallerDep,
    body: Annotated[MessageIn | Annotated[list[MessageIn], Field(min_length=1)], Body()],
) -> Envelope[Stored]:
    """All or none: either every message is stored, or none is. Answered once stored."""
    await guard(manager, caller, session_id)
    sent = body if isinstance(body, list) else [body]
    result = await manager.append(session_id, [m.new_message() for m in sent])
    session = result.session
    return Envelope(
        data=Stored(
            session_id=session.id,
            messages=[message_out(m) for m in result.messages],
            added=len(result.added),
            message_count=session.message_count,
            last_seq=session.last_seq,
            history_on_client=session.persistence is Persistence.CLIENT,
        )
    )
