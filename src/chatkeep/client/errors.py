"""The server's error envelope, raised as the library's own exceptions."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from chatkeep.errors import (
    ChatkeepError,
    ImmutableSettingError,
    InvalidInputError,
    SessionExistsError,
    SessionExpiredError,
    SessionNotFoundError,
    StoreUnavailableError,
    TransactionConflictError,
    VersionConflictError,
)


class ClientAuthError(ChatkeepError):
    """The server refused the credential (``unauthorized``) or the action (``forbidden``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class ServerError(ChatkeepError):
    """An error answer with a code this client has no exception for."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


class ServerUnreachableError(ChatkeepError, ConnectionError):
    """The server could not be reached, or the connection failed before an answer."""


def _not_found(message: str, session_id: str) -> ChatkeepError:
    return SessionNotFoundError(session_id)


def _expired(message: str, session_id: str) -> ChatkeepError:
    return SessionExpiredError(session_id)


def _exists(message: str, session_id: str) -> ChatkeepError:
    return SessionExistsError(session_id)


_VERSIONS = re.compile(r"at version (\d+), not the expected (\d+)")


def _conflict(message: str, session_id: str) -> ChatkeepError:
    found = _VERSIONS.search(message)
    actual, expected = (int(found[1]), int(found[2])) if found else (-1, -1)
    return VersionConflictError(session_id, expected, actual)


def _immutable(message: str, session_id: str) -> ChatkeepError:
    return ImmutableSettingError("persistence", message)


def _invalid(message: str, session_id: str) -> ChatkeepError:
    field, _, reason = message.partition(": ")
    return InvalidInputError(field, reason) if reason else InvalidInputError("request", message)


def _unavailable(message: str, session_id: str) -> ChatkeepError:
    return StoreUnavailableError(message)


def _transaction(message: str, session_id: str) -> ChatkeepError:
    return TransactionConflictError(message)


Factory = Callable[[str, str], ChatkeepError]

BY_CODE: Final[Mapping[str, Factory]] = {
    "session_not_found": _not_found,
    "session_expired": _expired,
    "session_exists": _exists,
    "version_conflict": _conflict,
    "immutable_setting": _immutable,
    "invalid_input": _invalid,
    "invalid_json": _invalid,
    "validation_error": _invalid,
    "store_unavailable": _unavailable,
    "not_ready": _unavailable,
    "transaction_conflict": _transaction,
}
"""Each error code of the server's envelope, and the exception it is raised as."""

AUTH_CODES: Final = frozenset({"unauthorized", "forbidden"})


def error_for(status: int, code: str, message: str, session_id: str = "") -> ChatkeepError:
    """The exception for an error answer (or an ``error`` WebSocket frame)."""
    if code in AUTH_CODES:
        return ClientAuthError(code, message)
    factory = BY_CODE.get(code)
    if factory is None:
        return ServerError(status, code, message)
    return factory(message, session_id)


def error_from_body(status: int, body: Any, session_id: str = "") -> ChatkeepError:
    """The exception for an error envelope; a body that is not one is a :class:`ServerError`."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ServerError(status, "unexpected_answer", f"HTTP {status} without an envelope")
    return error_for(status, str(error.get("code")), str(error.get("message")), session_id)
