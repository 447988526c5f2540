"""A client of the chatkeep server: :class:`AsyncClient` and :class:`Client` (REST, on
``httpx``), :class:`WebSocketSession` (``/ws``, on ``websockets``)."""

from chatkeep.client.decode import Loaded, Stored
from chatkeep.client.errors import ClientAuthError, ServerError, ServerUnreachableError
from chatkeep.client.http import AsyncClient
from chatkeep.client.sync import Client
from chatkeep.client.ws import WebSocketSession

__all__ = [
    "AsyncClient",
    "Client",
    "ClientAuthError",
    "Loaded",
    "ServerError",
    "ServerUnreachableError",
    "Stored",
    "WebSocketSession",
]
