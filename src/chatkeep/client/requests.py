"""Every call of the API as a :class:`Call`: the request to send and how to read its
answer. The async and sync clients only send what these functions build."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic.alias_generators import to_camel

from chatkeep.client.errors import error_from_body
from chatkeep.core.models import UNSET, NewMessage, Role, SessionUpdate
from chatkeep.core.query import SessionFilter

T = TypeVar("T")

Params = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    """Turns the envelope's ``data`` (or, when ``raw``, the body's text) into the result."""
    params: Params = field(default_factory=list)
    json: Any = None
    content: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bool = False
    session_id: str = ""


def build(http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
    """The ``httpx`` request of ``call`` (with ``http``'s base URL and headers)."""
    return http.build_request(
        call.method,
        call.path,
        params=tuple(call.params),
        json=call.json,
        content=call.content,
        headers=dict(call.headers),
    )


def finish(call: Call[T], response: httpx.Response) -> T:
    """The result of ``call`` from its ``response``; an error answer is raised."""
    if response.is_success:
        return call.read(response.text if call.raw else response.json()["data"])
    try:
        body = response.json()
    except ValueError:
        body = None
    raise error_from_body(response.status_code, body, call.session_id)


def _time(value: datetime) -> str:
    return value.isoformat()


def seconds(value: timedelta | float | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


def flag(value: bool) -> str:
    return "true" if value else "false"


def session_path(session_id: str, rest: str = "") -> str:
    return f"/api/sessions/{quote(session_id, safe='')}{rest}"


def filter_params(flt: SessionFilter) -> Params:
    params: Params = []
    if flt.owner is not None:
        params.append(("owner", flt.owner))
    if flt.device_id is not None:
        params.append(("deviceId", flt.device_id))
    params.extend(("tag", tag) for tag in sorted(flt.tags))
    params.extend((f"metadata.{k}", json.dumps(v)) for k, v in flt.metadata.items())
    for name in ("created_after", "created_before", "active_after", "active_before"):
        value = getattr(flt, name)
        if value is not None:
            params.append((to_camel(name), _time(value)))
    if flt.has_messages is not None:
        params.append(("hasMessages", flag(flt.has_messages)))
    params.append(("includeExpired", flag(flt.include_expired)))
    return params


def filter_body(flt: SessionFilter) -> dict[str, Any]:
    body: dict[str, Any] = {
        "owner": flt.owner,
        "deviceId": flt.device_id,
        "tags": sorted(flt.tags),
        "metadata": dict(flt.metadata),
        "hasMessages": flt.has_messages,
        "includeExpired": flt.include_expired,
    }
    for name in ("created_after", "created_before", "active_after", "active_before"):
        value = getattr(flt, name)
        body[to_camel(name)] = None if value is None else _time(value)
    return body


def changes_body(update: SessionUpdate) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for item in dataclasses.fields(update):
        value = getattr(update, item.name)
        if value is UNSET:
            continue
        if item.name == "ttl":
            value = seconds(value)
        elif isinstance(value, frozenset | set | list):
            value = sorted(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        body[to_camel(item.name)] = value
    return body


def message_body(message: NewMessage) -> dict[str, Any]:
    body: dict[str, Any] = {"role": Role(message.role).value, "content": message.content}
    if message.id is not None:
        body["clientId"] = message.id
    if message.user_id is not None:
        body["userId"] = message.user_id
    if message.metadata is not None:
        body["metadata"] = dict(message.metadata)
    return body
