"""The Redis store, and the Redis store written behind, reached over TLS (``rediss://``)
and over a Unix socket (``unix://``), on a private ``redis-server`` that listens on both;
and what a TLS URL says when the server does not speak TLS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

import chatkeep
from chatkeep.stores.tiered import TieredStore

from .conftest import RedisServer, free_port, unavailable


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("openssl is not installed")
        raise AssertionError("unreachable")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def listening(redis_server: RedisServer, tmp_path: Path) -> tuple[str, str, Path]:
    """The private server again, also on TLS and a Unix socket: (rediss URL, unix URL,
    the certificate to trust)."""
    cert, key = certificate(tmp_path)
    tls_port, sock = free_port(), tmp_path / "redis.sock"
    redis_server.stop()
    redis_server.start(
        *("--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)),
        *("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"),
        *("--unixsocket", str(sock), "--unixsocketperm", "700"),
    )
    return f"rediss://127.0.0.1:{tls_port}/0", f"unix://{sock}", cert


@pytest.mark.parametrize("kind", ["rediss", "unix"])
async def test_redis_is_reached_over_tls_and_a_unix_socket(
    listening: tuple[str, str, Path], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_url, unix_url, cert = listening
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the system's authorities, replaced
    url = tls_url if kind == "rediss" else unix_url
    async with chatkeep.open_store(f"{url}?prefix=plain") as store:
        session = await store.create_session()
        await store.append_messages(session.id, chatkeep.NewMessage(role="user", content="hi"))
    async with chatkeep.open_store(f"{unix_url}?prefix=plain") as same:  # one server
        assert [m.content for m in await same.get_messages(session.id)] == ["hi"]


async def test_a_store_written_behind_opens_on_a_unix_socket(
    listening: tuple[str, str, Path], tmp_path: Path
) -> None:
    _, unix_url, _ = listening
    durable = f"sqlite:///{tmp_path}/durable.db"
    url = f"{unix_url}?prefix=tier&sync_interval=300&write_behind={quote(durable, safe='')}"
    async with chatkeep.open_store(url) as tier:
        assert isinstance(tier, TieredStore)
        await tier.worker.first_sync.wait()
        session = await tier.create_session()
        assert await tier.sync_now() == 1
    async with chatkeep.open_store(durable) as copy:
        assert (await copy.get_session(session.id)).id == session.id


async def test_a_tls_url_to_a_server_without_tls_names_the_url(
    redis_server: RedisServer,
) -> None:
    url = f"rediss://127.0.0.1:{redis_server.port}/0"
    with pytest.raises(chatkeep.StoreUnavailableError, match=f"^cannot reach Redis at {url} "):
        await chatkeep.open_store(f"{url}?socket_timeout=0.5")


async def test_an_untrusted_certificate_is_refused(listening: tuple[str, str, Path]) -> None:
    tls_url, _, _ = listening  # its certificate not among the trusted ones
    with pytest.raises(chatkeep.StoreUnavailableError, match="certificate verify failed"):
        await chatkeep.open_store(f"{tls_url}?socket_timeout=2")
