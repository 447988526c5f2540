"""``chatkeep serve``: refuses to bind beyond loopback; a real process keeps messages
across a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from chatkeep.cli.main import app
from chatkeep.config import SETTINGS

from .support import ok

CHATKEEP = Path(sys.executable).with_name("chatkeep")
READY_WITHIN = 30.0


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment without any chatkeep setting from the machine running the tests."""
    names = {name for setting in SETTINGS for name in setting.env_names}
    for name in names:
        monkeypatch.delenv(name, raising=False)
    return {k: v for k, v in os.environ.items() if k not in names}


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["serve", "--host", "0.0.0.0"], {}),
        (["serve", "--host", "192.168.1.20"], {}),
        (["serve"], {"API_HOST": "::"}),
    ],
)
def test_a_non_loopback_host_is_refused(
    clean_env: dict[str, str], args: list[str], env: dict[str, str]
) -> None:
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: refusing to bind to ")
    assert "loopback" in lines[0]


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["serve", "--port", "http"], {}, "error: --port: 'http' is not an integer"),
        (["serve"], {"API_PORT": "99999"}, "error: API_PORT: '99999' is not an integer"),
    ],
)
def test_a_bad_port_is_one_line(
    clean_env: dict[str, str], args: list[str], env: dict[str, str], line: str
) -> None:
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2
    assert result.output.strip().startswith(line)
    assert len(result.output.strip().splitlines()) == 1


def test_a_store_that_cannot_open_is_one_line(clean_env: dict[str, str], tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = CliRunner().invoke(app, ["serve"], env={"STORAGE_DATABASE_PATH": str(not_a_dir)})
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert str(not_a_dir) in lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server_env(tmp_path: Path, clean_env: dict[str, str]) -> dict[str, str]:
    return {**clean_env, "STORAGE_DATABASE_PATH": str(tmp_path / "data")}


def wait_ready(process: subprocess.Popen[str], base: str) -> None:
    """Poll /healthz until it answers (or the process dies, or time runs out)."""
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"the server was not ready within {READY_WITHIN}s")


@pytest.fixture
def serve(server_env: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def start(started: list[subprocess.Popen[str]], env: dict[str, str], cwd: Path, port: int) -> str:
    process = subprocess.Popen(
        [str(CHATKEEP), "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(process, base)
    return base


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    return output


@pytest.mark.slow
def test_a_message_survives_a_restart(
    serve: list[subprocess.Popen[str]], server_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    base = start(serve, server_env, tmp_path, port)
    sid = ok(httpx.post(f"{base}/api/sessions", json={"tags": ["restart"]}), 201)["id"]
    body = {"role": "user", "content": "remember me", "clientId": "m-1"}
    ok(httpx.post(f"{base}/api/sessions/{sid}/messages", json=body), 201)
    output = stop(serve[0])
    assert f"serving http://127.0.0.1:{port}" in output
    assert (tmp_path / "data" / "chatkeep.db").exists()

    base = start(serve, server_env, tmp_path, port)
    history = ok(httpx.post(f"{base}/api/sessions/{sid}/load"))["conversationHistory"]
    assert [(m["id"], m["seq"], m["content"]) for m in history] == [("m-1", 1, "remember me")]
    assert ok(httpx.get(f"{base}/readyz"))["status"] == "ready"
    stop(serve[1])
