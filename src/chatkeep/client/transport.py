"""What both HTTP clients pass to ``httpx``: the base URL, the bearer header, the timeout."""

from __future__ import annotations

from typing import TypedDict


class ClientOptions(TypedDict):
    base_url: str
    headers: dict[str, str]
    timeout: float


def auth_headers(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def client_options(base_url: str, token: str | None, timeout: float) -> ClientOptions:
    return ClientOptions(base_url=base_url, headers=auth_headers(token), timeout=timeout)
