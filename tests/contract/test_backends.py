"""The backend list itself: a server backend skips when its server is down, and fails under CI."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .conftest import served


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_server_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    backend = served(
        "redis", "CHATKEEP_TEST_NO_SUCH_VAR", f"redis://127.0.0.1:{closed_port()}/0", "prefix"
    )
    with pytest.raises(pytest.skip.Exception, match=r"redis server .* is unreachable"):
        backend.require()


def test_an_unreachable_server_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    backend = served(
        "redis", "CHATKEEP_TEST_NO_SUCH_VAR", f"redis://127.0.0.1:{closed_port()}/0", "prefix"
    )
    with pytest.raises(pytest.fail.Exception, match="unreachable"):
        backend.require()


def test_a_reachable_server_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv(
            "CHATKEEP_TEST_SERVER", f"postgresql://127.0.0.1:{port}/db?sslmode=disable"
        )
        backend = served("postgresql", "CHATKEEP_TEST_SERVER", "postgresql://unused/", "schema")
        backend.require()
    one, other = backend.url_in(tmp_path / "a"), backend.url_in(tmp_path / "b")
    assert one.startswith(f"postgresql://127.0.0.1:{port}/db?sslmode=disable&schema=ck")
    assert one != other
    assert backend.url_in(tmp_path / "a") == one
