"""Private servers that a test may stop and start, and namespaces on the shared ones.

A private server runs on a free port of its own, so that stopping it disturbs no other
test; it is always stopped (and its files removed) when the test ends. A test whose
server program is not installed, or whose shared service is unreachable, skips with the
reason, or fails when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from chatkeep.stores.postgres_options import driver_dsn
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.sql.postgres import quote_ident

REDIS_URL = os.environ.get("CHATKEEP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "CHATKEEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
READY_WITHIN = 20.0
"""Seconds a private server may take to answer after it is started."""


def unavailable(reason: str) -> None:
    """Skip the test for ``reason``; under ``CI=true`` fail it instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_option(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


def require_port(url: str, default_port: int) -> None:
    """Skip (or fail under CI) unless something listens at ``url``'s host and port."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        unavailable(f"the server {host}:{port} is unreachable ({exc})")


# -- a private redis-server -------------------------------------------------------------


class RedisServer:
    """A ``redis-server`` child process on its own port, keeping nothing on disk."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *options: str) -> None:
        """Start it, with more ``redis-server`` ``options`` if given."""
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no", *options]
        self.process = subprocess.Popen(
            command, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + READY_WITHIN
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError as exc:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"redis-server on port {self.port} did not start"
                        ) from exc
                    time.sleep(0.01)
        finally:
            client.close()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started private Redis; stopped when the test ends, whatever happens."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed")
        raise AssertionError("unreachable")
    server = RedisServer(binary, tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# -- a private PostgreSQL cluster -------------------------------------------------------


def postgres_bin() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: on the PATH, else the newest under
    /usr/lib/postgresql."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return versions[-1].parent if versions else None


class PostgresServer:
    """A PostgreSQL cluster of its own in a temporary directory (trust authentication,
    superuser ``postgres``), run as the ``postgres`` OS user when the tests run as root."""

    def __init__(self, bin_dir: Path, directory: Path) -> None:
        self.bin_dir = bin_dir
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        initdb = str(self.bin_dir / "initdb")
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg_ctl = str(self.bin_dir / "pg_ctl")
        log = str(self.directory / "server.log")
        self.running = True
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        if self.running:
            pg_ctl = str(self.bin_dir / "pg_ctl")
            self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A started private PostgreSQL; stopped and removed when the test ends."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        unavailable("PostgreSQL's initdb and pg_ctl are not installed")
        raise AssertionError("unreachable")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running as root, and runuser (to run PostgreSQL as postgres) is missing")
    directory = Path(tempfile.mkdtemp(prefix="ckfailpg"))
    server = PostgresServer(bin_dir, directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


# -- private namespaces on the shared services -----------------------------------------


@pytest.fixture
def shared_redis_url() -> Iterator[str]:
    """A store URL on the shared Redis with a fresh key prefix, deleted after the test."""
    require_port(REDIS_URL, 6379)
    prefix = f"ckfail{secrets.token_hex(6)}"
    yield with_option(REDIS_URL, "prefix", prefix)
    parts = urlsplit(REDIS_URL)
    client = redis.Redis.from_url(urlunsplit(parts._replace(query="")))
    try:
        found = list(client.scan_iter(match=Keys(prefix).pattern(), count=1000))
        for start in range(0, len(found), 500):
            client.unlink(*found[start : start + 500])
    finally:
        client.close()


@pytest.fixture
def shared_postgres_url() -> Iterator[str]:
    """A store URL on the shared PostgreSQL with a fresh schema, dropped after the test."""
    require_port(POSTGRES_URL, 5432)
    schema = f"ckfail{secrets.token_hex(6)}"
    yield with_option(POSTGRES_URL, "schema", schema)

    async def drop() -> None:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(driver_dsn(POSTGRES_URL))
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as thread:  # away from the test's event loop
        thread.submit(asyncio.run, drop()).result()
