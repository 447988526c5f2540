"""A real ``chatkeep serve`` process for the browser tests, which it outlives a test of:
it can be restarted on the same port and data, and its log is drained as it runs (a
long-lived server must never block on a full pipe) and kept for failure reports."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

from chatkeep.config import SETTINGS
from server.test_serve import free_port, start

STOP_WITHIN = 30.0


def server_env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This machine's environment without its chatkeep settings, storing in ``data_dir``."""
    names = {name for setting in SETTINGS for name in setting.env_names}
    env = {k: v for k, v in os.environ.items() if k not in names}
    return {**env, "STORAGE_DATABASE_PATH": str(data_dir), **(extra or {})}


class Served:
    """``chatkeep serve`` on a free port of 127.0.0.1 over its own data directory."""

    def __init__(self, directory: Path, extra_env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.env = server_env(directory / "data", extra_env)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log: list[str] = []
        self._started: list[subprocess.Popen[str]] = []
        self._drains: list[threading.Thread] = []

    @property
    def process(self) -> subprocess.Popen[str]:
        return self._started[-1]

    def start(self) -> None:
        """Start it and wait until it answers (``start`` of the server tests)."""
        start(self._started, self.env, self.directory, self.port)
        drain = threading.Thread(target=self._drain, args=(self.process,), daemon=True)
        drain.start()
        self._drains.append(drain)

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.log.append(line)

    def stop(self) -> None:
        """Stop it with SIGTERM, as a service manager would, and wait until it is gone."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_WITHIN)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for drain in self._drains:
            drain.join(timeout=STOP_WITHIN)
        if process.stdout is not None:
            process.stdout.close()
        assert process.returncode in (0, -signal.SIGTERM), "".join(self.log[-20:])

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop every process it started, whatever state they are in."""
        for process in self._started:
            if process.poll() is None:
                process.kill()
                process.wait()
        for drain in self._drains:
            drain.join(timeout=STOP_WITHIN)
        for process in self._started:
            if process.stdout is not None and not process.stdout.closed:
                process.stdout.close()
