"""``chatkeep serve``'s bind rules with and without authentication, and ``chatkeep token``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from chatkeep.cli.main import app
from chatkeep.cli.serve import check_bind
from chatkeep.config import SETTINGS, ServerConfig
from chatkeep.server.auth import UnauthorizedError, read_token

from .auth_support import KEY_A, SECRET

KEYS = f"{KEY_A}:alice"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No chatkeep setting from the machine running the tests."""
    for setting in SETTINGS:
        for name in setting.env_names:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def unopenable(tmp_path: Path) -> dict[str, str]:
    """A data directory that is a file: serve stops (exit 1) after its bind check."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    return {"STORAGE_DATABASE_PATH": str(not_a_dir)}


def run(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, args, env=env)


@pytest.mark.parametrize(
    ("server", "allowed", "says"),
    [
        (ServerConfig(), True, None),
        (ServerConfig(host="::1"), True, None),
        (ServerConfig(host="0.0.0.0"), False, "refusing to bind to 0.0.0.0"),
        (ServerConfig(host="0.0.0.0", insecure_bind=True), True, "warning: serving 0.0.0.0"),
        (ServerConfig(host="0.0.0.0", api_keys=((KEY_A, "alice"),)), True, None),
        (ServerConfig(host="example.com", token_secret=SECRET), True, None),
        (ServerConfig(host="10.0.0.1", token_secret=SECRET, insecure_bind=True), True, None),
    ],
)
def test_which_binds_are_allowed(server: ServerConfig, allowed: bool, says: str | None) -> None:
    check = check_bind(server)
    assert check.allowed is allowed
    if says is None:
        assert check.message is None
    else:
        assert check.message is not None
        assert check.message.startswith(says)


def test_refused_without_auth_names_the_ways_out() -> None:
    result = run(["serve", "--host", "0.0.0.0"], {})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: refusing to bind to 0.0.0.0")
    for way in ("CHATKEEP_API_KEYS", "CHATKEEP_TOKEN_SECRET", "--insecure-bind"):
        assert way in result.stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["serve", "--host", "0.0.0.0", "--insecure-bind"], {}),
        (["serve", "--host", "0.0.0.0"], {"CHATKEEP_INSECURE_BIND": "true"}),
        (["--insecure-bind", "yes", "serve", "--host", "0.0.0.0"], {}),
    ],
)
def test_insecure_bind_passes_the_check_with_a_warning(
    args: list[str], env: dict[str, str], unopenable: dict[str, str]
) -> None:
    result = run(args, {**env, **unopenable})
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("warning: serving 0.0.0.0 without authentication")
    assert "refusing" not in result.stderr


@pytest.mark.parametrize(
    "env", [{"CHATKEEP_API_KEYS": KEYS}, {"CHATKEEP_TOKEN_SECRET": SECRET}], ids=["keys", "secret"]
)
def test_with_auth_any_host_passes_the_check_quietly(
    env: dict[str, str], unopenable: dict[str, str]
) -> None:
    result = run(["serve", "--host", "0.0.0.0"], {**env, **unopenable})
    assert result.exit_code == 1, result.output
    assert "refusing" not in result.stderr
    assert "warning" not in result.stderr


def test_a_bad_key_list_is_one_line_without_the_keys(unopenable: dict[str, str]) -> None:
    result = run(["serve"], {"CHATKEEP_API_KEYS": f"{KEY_A}:alice,short:bob", **unopenable})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: CHATKEEP_API_KEYS: the value (not shown) is not")
    assert len(result.stderr.strip().splitlines()) == 1
    assert KEY_A not in result.output


def test_token_prints_a_token_for_the_owner() -> None:
    before = datetime.now(UTC)
    result = run(["token", "alice", "--ttl", "2h"], {"CHATKEEP_TOKEN_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert read_token(SECRET, token, before + timedelta(minutes=119)) == "alice"
    with pytest.raises(UnauthorizedError, match="expired"):
        read_token(SECRET, token, before + timedelta(hours=2, seconds=2))


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["token", "alice"], {}, "error: no token secret is configured"),
        (["token", "alice"], {"CHATKEEP_API_KEYS": KEYS}, "error: no token secret"),
        (["token", "alice", "--ttl", "soon"], {"CHATKEEP_TOKEN_SECRET": SECRET}, "error: --ttl"),
        (["token", "two words"], {"CHATKEEP_TOKEN_SECRET": SECRET}, "error: OWNER"),
    ],
)
def test_token_refuses_with_one_line(args: list[str], env: dict[str, str], line: str) -> None:
    result = run(args, env)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(line)
    assert len(result.stderr.strip().splitlines()) == 1
