"""Every error the server can answer with: one table, and the handlers that use it.

Each chatkeep error class maps to an HTTP status, a stable error ``code`` and the
WebSocket close code a connection ends with for it. The body is always the envelope
``{"success": false, "error": {"code", "message"}}``; stack traces never leave the server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from chatkeep.core.models import JSON
from chatkeep.errors import (
    ChatkeepError,
    ConfigurationError,
    CorruptDataError,
    ImmutableSettingError,
    InvalidInputError,
    MissingDependencyError,
    SessionExistsError,
    SessionExpiredError,
    SessionNotFoundError,
    StoreClosedError,
    StoreUnavailableError,
    TransactionConflictError,
    VersionConflictError,
)
from chatkeep.server.auth import ForbiddenError, UnauthorizedError
from chatkeep.server.wire import ErrorEnvelope

logger = logging.getLogger("chatkeep.server")


class CloseCode:
    """WebSocket close codes (1xxx from RFC 6455, 4xxx private: 4000 + the HTTP status)."""

    INTERNAL_ERROR: Final = 1011
    TRY_AGAIN_LATER: Final = 1013
    MESSAGE_TOO_BIG: Final = 1009
    BAD_REQUEST: Final = 4400
    UNAUTHORIZED: Final = 4401
    FORBIDDEN: Final = 4403
    NOT_FOUND: Final = 4404
    REQUEST_TIMEOUT: Final = 4408
    CONFLICT: Final = 4409
    GONE: Final = 4410


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    status: int
    code: str
    close_code: int


ERRORS: Mapping[type[Exception], ErrorSpec] = {
    InvalidInputError: ErrorSpec(400, "invalid_input", CloseCode.BAD_REQUEST),
    SessionNotFoundError: ErrorSpec(404, "session_not_found", CloseCode.NOT_FOUND),
    SessionExpiredError: ErrorSpec(410, "session_expired", CloseCode.GONE),
    SessionExistsError: ErrorSpec(409, "session_exists", CloseCode.CONFLICT),
    VersionConflictError: ErrorSpec(409, "version_conflict", CloseCode.CONFLICT),
    ImmutableSettingError: ErrorSpec(409, "immutable_setting", CloseCode.CONFLICT),
    TransactionConflictError: ErrorSpec(409, "transaction_conflict", CloseCode.TRY_AGAIN_LATER),
    StoreUnavailableError: ErrorSpec(503, "store_unavailable", CloseCode.TRY_AGAIN_LATER),
    StoreClosedError: ErrorSpec(503, "store_unavailable", CloseCode.TRY_AGAIN_LATER),
    CorruptDataError: ErrorSpec(500, "corrupt_data", CloseCode.INTERNAL_ERROR),
    ConfigurationError: ErrorSpec(500, "configuration_error", CloseCode.INTERNAL_ERROR),
    MissingDependencyError: ErrorSpec(500, "configuration_error", CloseCode.INTERNAL_ERROR),
    ChatkeepError: ErrorSpec(500, "internal_error", CloseCode.INTERNAL_ERROR),
}
"""Looked up along the exception's class hierarchy: the most specific class wins."""

SERVER_ERRORS: Mapping[type[Exception], ErrorSpec] = {
    UnauthorizedError: ErrorSpec(401, "unauthorized", CloseCode.UNAUTHORIZED),
    ForbiddenError: ErrorSpec(403, "forbidden", CloseCode.FORBIDDEN),
}
"""The errors only the server raises (authentication); looked up before :data:`ERRORS`."""

INTERNAL = ErrorSpec(500, "internal_error", CloseCode.INTERNAL_ERROR)
INTERNAL_MESSAGE = "internal server error"

HTTP_CODES: Mapping[int, str] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}
"""Codes of the errors the HTTP layer itself raises (unknown route, wrong method...)."""


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Bad input (`invalid_input`, `invalid_json`)",
        401: "Authentication is on and the credentials are missing or not valid (`unauthorized`)",
        403: "The caller may not do this (`forbidden`)",
        404: "No such session (`session_not_found`)",
        409: "Conflict (`session_exists`, `version_conflict`, `immutable_setting`)",
        410: "The session has expired (`session_expired`)",
        413: "The request body is too large (`payload_too_large`)",
        422: "The request does not have the expected shape (`validation_error`)",
        503: "A store is unavailable (`store_unavailable`)",
    }.items()
}
"""The failures of the API routes, for the OpenAPI document."""


def spec_for(exc: BaseException) -> ErrorSpec:
    for kind in type(exc).__mro__:
        found = SERVER_ERRORS.get(kind) or ERRORS.get(kind)
        if found is not None:
            return found
    return INTERNAL


def error_body(code: str, message: str, details: JSON = None) -> dict[str, JSON]:
    error: dict[str, JSON] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    details: JSON = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


async def chatkeep_error(request: Request, exc: Exception) -> JSONResponse:
    spec = spec_for(exc)
    if spec.status == 503:
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
    elif spec.status >= 500:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    if isinstance(exc, StoreClosedError):
        message = "the store is unavailable"
    elif spec.status < 500 or isinstance(exc, ConfigurationError | StoreUnavailableError):
        message = str(exc)
    else:
        message = INTERNAL_MESSAGE
    return error_response(spec.status, spec.code, message)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):
        raise RuntimeError(f"expected an HTTPException, got {exc!r}")
    code = HTTP_CODES.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Malformed JSON is 400 ``invalid_json``; a body or parameter of the wrong shape is
    422 ``validation_error``. ``details`` lists each problem as ``{field, message}``."""
    if not isinstance(exc, RequestValidationError):
        raise RuntimeError(f"expected a RequestValidationError, got {exc!r}")
    problems = [_problem(error) for error in exc.errors()]
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        return error_response(400, "invalid_json", "the request body is not valid JSON")
    first = problems[0] if problems else {"field": "request", "message": "is not valid"}
    message = f"{first['field']}: {first['message']}"
    details: list[JSON] = list(problems)
    return error_response(422, "validation_error", message, details)


def _problem(error: Mapping[str, object]) -> dict[str, JSON]:
    loc = error.get("loc", ())
    parts: Sequence[object] = loc if isinstance(loc, tuple | list) else (loc,)
    kept = [str(part) for part in parts if part not in ("body", "query", "path", "header")]
    return {"field": ".".join(kept) or "body", "message": str(error.get("msg", "is not valid"))}


def install(app: FastAPI) -> None:
    """Make every error answer in the envelope."""
    app.add_exception_handler(ChatkeepError, chatkeep_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
