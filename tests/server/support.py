"""Checks of the response envelope, shared by the server tests."""

from __future__ import annotations

from typing import Any

import httpx


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The ``data`` of a successful envelope (checking its shape and the status)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "data"}, body
    assert body["success"] is True
    return body["data"]


def failed(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The ``error`` of a failure envelope with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False, body
    assert set(body) == {"success", "error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in response.text
    return error


async def new_session(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    data: dict[str, Any] = ok(await client.post("/api/sessions", json=body), 201)
    return data
