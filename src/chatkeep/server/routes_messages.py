"""A session's messages: load (with its history), history, paged reads and appends.

These are the routes a chat calls on every turn, kept cheap: each takes the request
itself rather than dependencies (:func:`~chatkeep.server.deps.served`), and answers with
:func:`~chatkeep.server.wire.answer`, the JSON of its model (declared as
``response_model``) encoded from the records at once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import Field

from chatkeep.core.models import Message, Persistence, Session
from chatkeep.manager import SessionManager
from chatkeep.server.deps import guard, owned, served
from chatkeep.server.errors import ERROR_RESPONSES
from chatkeep.server.wire import (
    MAX_INT,
    Envelope,
    MessageIn,
    MessageOut,
    SessionOut,
    Wire,
    answer,
    message_json,
    session_json,
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
async def load_session(session_id: str, request: Request) -> Response:
    manager, caller = await served(request)
    await guard(manager, caller, session_id)
    session = await manager.touch(session_id)
    history = await _history(manager, session)
    return answer(
        {
            "sessionId": session.id,
            "loaded": True,
            "session": session_json(session),
            "conversationHistory": [message_json(m) for m in history],
            "historyOnClient": session.persistence is Persistence.CLIENT,
        }
    )


@router.get(
    "/api/sessions/{session_id}/history",
    summary="A session's whole stored history",
    response_model=Envelope[History],
)
async def get_history(session_id: str, request: Request) -> Response:
    manager, caller = await served(request)
    session = await owned(manager, caller, session_id)
    history = [message_json(m) for m in await _history(manager, session)]
    return answer(
        {
            "sessionId": session.id,
            "history": history,
            "count": len(history),
            "historyOnClient": session.persistence is Persistence.CLIENT,
        }
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
    request: Request,
    after_seq: Annotated[int | None, Query(alias="afterSeq", ge=0, le=MAX_INT)] = None,
    before_seq: Annotated[int | None, Query(alias="beforeSeq", ge=1, le=MAX_INT)] = None,
    last: Annotated[int | None, Query(ge=1, le=MAX_INT, description="Only the newest N.")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> Response:
    """Messages in seq order: those after `afterSeq` and before `beforeSeq`, the newest
    `last` of them, at most `limit`."""
    manager, caller = await served(request)
    await guard(manager, caller, session_id)
    messages = await manager.get_messages(
        session_id, last=last, after_seq=after_seq, before_seq=before_seq, limit=limit
    )
    out = [message_json(m) for m in messages]
    return answer({"sessionId": session_id, "messages": out, "count": len(out)})


@router.post(
    "/api/sessions/{session_id}/messages",
    summary="Append one message or a list of them",
    status_code=201,
    response_model=Envelope[Stored],
)
async def append_messages(
    session_id: str,
    request: Request,
    body: Annotated[MessageIn | Annotated[list[MessageIn], Field(min_length=1)], Body()],
) -> Response:
    """All or none: either every message is stored, or none is. Answered once stored."""
    manager, caller = await served(request)
    await guard(manager, caller, session_id)
    sent = body if isinstance(body, list) else [body]
    result = await manager.append(session_id, [m.new_message() for m in sent])
    session = result.session
    return answer(
        {
            "sessionId": session.id,
            "messages": [message_json(m) for m in result.messages],
            "added": len(result.added),
            "messageCount": session.message_count,
            "lastSeq": session.last_seq,
            "historyOnClient": session.persistence is Persistence.CLIENT,
        },
        status_code=201,
    )
