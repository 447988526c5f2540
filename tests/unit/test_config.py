"""chatkeep.config: every variable, its aliases, precedence, and one-line errors."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from chatkeep.config import (
    SETTINGS,
    Config,
    ManagerConfig,
    ServerConfig,
    StoreConfig,
)
from chatkeep.config_values import parse_duration
from chatkeep.core.models import Persistence
from chatkeep.core.rules import SessionDefaults
from chatkeep.core.validation import MAX_WINDOW
from chatkeep.errors import ConfigurationError

H = timedelta(hours=1)
KEY_A = "a" * 16
KEY_B = "b-key-0123456789abcdef"
SECRET = "s3cret-" * 4


def value(config: Config, path: str) -> object:
    section, name = path.split(".")
    return getattr(getattr(config, section), name)


def test_no_environment_gives_the_defaults() -> None:
    config = Config.from_env({})
    assert config == Config()
    assert config.store.url == "sqlite:///chatkeep-data/chatkeep.db"
    assert config.store.default_ttl == timedelta(hours=24)
    assert config.store.max_messages == 1000
    assert config.manager.default_persistence is Persistence.DURABLE
    assert config.manager.backup_dir == Path("chatkeep-data/backups")
    assert config.manager.backup_interval is None


def test_config_is_frozen() -> None:
    config = Config.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.store.url = "memory://"  # type: ignore[misc]


# Every variable, by its CHATKEEP_ name and by each other name it has.
CASES = [
    ("CHATKEEP_STORE_URL", "memory://", "store.url", "memory://"),
    ("DATABASE_URL", "sqlite:////srv/chat.db", "store.url", "sqlite:////srv/chat.db"),
    ("CHATKEEP_STORE_TYPE", "memory", "store.url", "memory://"),
    ("STORAGE_DATABASE_TYPE", "FILE", "store.url", "file://chatkeep-data/sessions"),
    ("CHATKEEP_DATA_DIR", "/var/lib/ck", "store.url", "sqlite:////var/lib/ck/chatkeep.db"),
    ("STORAGE_DATABASE_PATH", "./data", "store.url", "sqlite:///data/chatkeep.db"),
    ("CHATKEEP_DATABASE_NAME", "x.db", "store.url", "sqlite:///chatkeep-data/x.db"),
    ("STORAGE_DATABASE_NAME", "y.db", "store.url", "sqlite:///chatkeep-data/y.db"),
    ("CHATKEEP_SESSION_TTL", "20m", "store.default_ttl", timedelta(minutes=20)),
    ("SESSION_TTL", "86400000", "store.default_ttl", timedelta(hours=24)),
    ("SESSION_TTL", "1200s", "store.default_ttl", timedelta(seconds=1200)),
    ("SESSION_EXPIRY_SECONDS", "1h", "store.default_ttl", H),
    ("DEFAULT_SESSION_TTL", "1d", "store.default_ttl", timedelta(days=1)),
    ("SESSION_TTL", "never", "store.default_ttl", None),
    ("CHATKEEP_MAX_MESSAGES", "50", "store.max_messages", 50),
    ("MAX_MESSAGES_PER_SESSION", "7", "store.max_messages", 7),
    ("CHATKEEP_MAX_CONTENT_BYTES", "512k", "store.max_content_bytes", 512 * 1024),
    ("CHATKEEP_MAX_CONTENT_BYTES", "1MiB", "store.max_content_bytes", 1 << 20),
    ("CHATKEEP_MAX_CONTENT_BYTES", "4096", "store.max_content_bytes", 4096),
    ("CHATKEEP_DEFAULT_PERSISTENCE", "Redis", "manager.default_persistence", Persistence.REDIS),
    ("CHATKEEP_MAX_SESSIONS", "10", "manager.max_sessions", 10),
    ("SESSION_MAX_SESSIONS", "100", "manager.max_sessions", 100),
    ("CHATKEEP_SWEEP_INTERVAL", "30s", "manager.sweep_interval", timedelta(seconds=30)),
    ("SESSION_CLEANUP_INTERVAL", "5m", "manager.sweep_interval", timedelta(minutes=5)),
    ("CHATKEEP_BACKUP_DIR", "/backups", "manager.backup_dir", Path("/backups")),
    ("CHATKEEP_BACKUP_INTERVAL", "10m", "manager.backup_interval", timedelta(minutes=10)),
    ("CHATKEEP_BACKUP_INTERVAL", "off", "manager.backup_interval", None),
    ("CHATKEEP_MAX_BACKUPS", "24", "manager.max_backups", 24),
    ("CHATKEEP_HOST", "localhost", "server.host", "localhost"),
    ("API_HOST", "::1", "server.host", "::1"),
    ("API_HOST", " 127.0.0.2 ", "server.host", "127.0.0.2"),
    ("CHATKEEP_PORT", "9000", "server.port", 9000),
    ("API_PORT", "3001", "server.port", 3001),
    ("CHATKEEP_MAX_REQUEST_BYTES", "64k", "server.max_request_bytes", 64 * 1024),
    ("CHATKEEP_WS_MAX_FRAME_BYTES", "16k", "server.ws_max_frame_bytes", 16 * 1024),
    ("CHATKEEP_WS_MAX_SESSIONS", "3", "server.ws_max_sessions", 3),
    ("CHATKEEP_WS_SEND_RATE", "5", "server.ws_send_rate", 5),
    ("CHATKEEP_WS_SEND_BURST", "8", "server.ws_send_burst", 8),
    ("CHATKEEP_WS_IDLE_TIMEOUT", "2m", "server.ws_idle_timeout", timedelta(minutes=2)),
    ("CHANNEL_REDIS_URL", "redis://r:6379/0", "server.channel_redis_url", "redis://r:6379/0"),
    (
        "CHATKEEP_CHANNEL_REDIS_URL",
        " redis://r/1?prefix=a ",
        "server.channel_redis_url",
        "redis://r/1?prefix=a",
    ),
    ("CHATKEEP_API_KEYS", f"{KEY_A}:alice", "server.api_keys", ((KEY_A, "alice"),)),
    (
        "CHATKEEP_API_KEYS",
        f" {KEY_A}:alice , {KEY_B}:bob ",
        "server.api_keys",
        ((KEY_A, "alice"), (KEY_B, "bob")),
    ),
    ("CHATKEEP_TOKEN_SECRET", SECRET, "server.token_secret", SECRET),
    ("CHATKEEP_INSECURE_BIND", "yes", "server.insecure_bind", True),
    ("CHATKEEP_INSECURE_BIND", "False", "server.insecure_bind", False),
    ("CHATKEEP_REDIS_URL", "redis://r:6379/1", "store.redis_url", "redis://r:6379/1"),
    ("REDIS_URL", "redis://r", "store.redis_url", "redis://r"),
    ("CHATKEEP_REDIS_SESSION_TTL", "5m", "store.redis_session_ttl", timedelta(minutes=5)),
    ("REDIS_SESSION_TTL", "300", "store.redis_session_ttl", timedelta(seconds=300)),
    ("CHATKEEP_WRITE_BEHIND", "off", "store.write_behind", False),
    ("SESSION_PERSISTENCE_ENABLED", "true", "store.write_behind", True),
    ("CHATKEEP_WRITE_BEHIND_URL", "sqlite:///h.db", "store.write_behind_url", "sqlite:///h.db"),
    ("CHATKEEP_SYNC_INTERVAL", "2s", "store.sync_interval", timedelta(seconds=2)),
    ("SESSION_SYNC_INTERVAL_SECONDS", "300", "store.sync_interval", timedelta(minutes=5)),
]


@pytest.mark.parametrize(("variable", "text", "path", "expected"), CASES)
def test_each_variable_is_read(variable: str, text: str, path: str, expected: object) -> None:
    assert value(Config.from_env({variable: text}), path) == expected


def test_every_setting_and_alias_is_covered_above() -> None:
    covered = {case[0] for case in CASES}
    for setting in SETTINGS:
        assert set(setting.env_names) <= covered, setting.name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1200", timedelta(seconds=1200)),
        ("1.5", timedelta(seconds=1.5)),
        ("20m", timedelta(minutes=20)),
        ("1h", H),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("500ms", timedelta(milliseconds=500)),
        ("1h30m", timedelta(minutes=90)),
        (" 1H 30M ", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_duration_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["abc", "0", "0m", "-5", "1x", "h", "m1", "1e3", "nan", "inf", "1h-5m", "99999999999d"]
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_duration(text)


def test_zero_duration_only_when_allowed() -> None:
    assert parse_duration("0", allow_zero=True) == timedelta(0)
    assert parse_duration(timedelta(0), allow_zero=True) == timedelta(0)


def test_precedence_override_then_chatkeep_name_then_aliases_in_order_then_default() -> None:
    env = {
        "CHATKEEP_SESSION_TTL": "1m",
        "SESSION_TTL": "2m",
        "SESSION_EXPIRY_SECONDS": "3m",
        "DEFAULT_SESSION_TTL": "4m",
    }
    assert Config.from_env(env, session_ttl="30s").store.default_ttl == timedelta(seconds=30)
    assert Config.from_env(env).store.default_ttl == timedelta(minutes=1)
    del env["CHATKEEP_SESSION_TTL"]
    assert Config.from_env(env).store.default_ttl == timedelta(minutes=2)
    del env["SESSION_TTL"]
    assert Config.from_env(env).store.default_ttl == timedelta(minutes=3)
    del env["SESSION_EXPIRY_SECONDS"]
    assert Config.from_env(env).store.default_ttl == timedelta(minutes=4)
    del env["DEFAULT_SESSION_TTL"]
    assert Config.from_env(env).store.default_ttl == timedelta(hours=24)


def test_a_bad_lower_precedence_value_is_not_read() -> None:
    env = {"CHATKEEP_MAX_SESSIONS": "5", "SESSION_MAX_SESSIONS": "not a number"}
    assert Config.from_env(env).manager.max_sessions == 5
    assert Config.from_env({"SESSION_TTL": "abc"}, session_ttl="1h").store.default_ttl == H


def test_blank_variables_count_as_unset() -> None:
    env = {"CHATKEEP_SESSION_TTL": "  ", "SESSION_TTL": "5m", "CHATKEEP_MAX_MESSAGES": ""}
    config = Config.from_env(env)
    assert config.store.default_ttl == timedelta(minutes=5)
    assert config.store.max_messages == 1000


def test_none_override_means_not_given() -> None:
    config = Config.from_env({"SESSION_TTL": "5m"}, session_ttl=None)
    assert config.store.default_ttl == timedelta(minutes=5)


def test_typed_overrides_are_validated_like_text() -> None:
    config = Config.from_env(
        {},
        session_ttl=timedelta(minutes=5),
        max_messages=3,
        default_persistence=Persistence.CLIENT,
        data_dir=Path("/d"),
    )
    assert config.store.default_ttl == timedelta(minutes=5)
    assert config.store.max_messages == 3
    assert config.manager.default_persistence is Persistence.CLIENT
    assert config.store.url == "sqlite:////d/chatkeep.db"
    with pytest.raises(ConfigurationError, match=r"^max_messages: 'True' is not an integer"):
        Config.from_env({}, max_messages=True)
    with pytest.raises(ConfigurationError, match=r"^session_ttl: "):
        Config.from_env({}, session_ttl=-1)


def test_unknown_override_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"unknown setting.*session_tll"):
        Config.from_env({}, session_tll="1h")


def test_the_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_TTL", "7m")
    assert Config.from_env().store.default_ttl == timedelta(minutes=7)


def test_a_full_url_wins_over_type_and_path() -> None:
    env = {
        "STORAGE_DATABASE_TYPE": "file",
        "STORAGE_DATABASE_PATH": "/data",
        "DATABASE_URL": "memory://",
    }
    assert Config.from_env(env).store.url == "memory://"
    assert Config.from_env(env, store_url="sqlite:///x.db").store.url == "sqlite:///x.db"
    del env["DATABASE_URL"]
    assert Config.from_env(env).store.url == "file:///data/sessions"


def test_backup_dir_follows_the_data_dir_unless_given() -> None:
    assert Config.from_env({"STORAGE_DATABASE_PATH": "/d"}).manager.backup_dir == Path("/d/backups")
    env = {"STORAGE_DATABASE_PATH": "/d", "CHATKEEP_BACKUP_DIR": "/b"}
    assert Config.from_env(env).manager.backup_dir == Path("/b")


def test_home_is_expanded_in_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    config = Config.from_env({"CHATKEEP_DATA_DIR": "~/ck"})
    assert config.store.url == "sqlite:////home/someone/ck/chatkeep.db"


def test_session_defaults_and_limits_come_from_the_config() -> None:
    env = {
        "SESSION_TTL": "10m",
        "MAX_MESSAGES_PER_SESSION": "20",
        "CHATKEEP_MAX_CONTENT_BYTES": "1k",
    }
    config = Config.from_env(env, default_persistence="none")
    assert config.session_defaults() == SessionDefaults(
        ttl=timedelta(minutes=10), max_messages=20, persistence=Persistence.NONE
    )
    assert config.store.limits().max_content_bytes == 1024


def test_server_defaults_bind_loopback_port_8000() -> None:
    server = Config.from_env({}).server
    assert (server.host, server.port) == ("127.0.0.1", 8000)
    assert server.url == "http://127.0.0.1:8000"
    assert server.max_request_bytes == 8 << 20


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert ServerConfig(host=host).loopback is loopback


def test_an_ipv6_url_has_brackets() -> None:
    assert ServerConfig(host="::1", port=9).url == "http://[::1]:9"


def test_the_dataclasses_can_be_built_directly() -> None:
    config = Config(StoreConfig(url="memory://"), ManagerConfig(max_sessions=3))
    assert config.store.url == "memory://"
    assert config.manager.max_sessions == 3


# One bad value for every variable, and the line it must give.
BAD = [
    ("SESSION_TTL", "abc", "is not a duration (seconds, or like 20m, 1h) or 'never'"),
    ("CHATKEEP_SESSION_TTL", "0", "is not a duration"),
    ("SESSION_EXPIRY_SECONDS", "-3", "is not a duration"),
    ("DEFAULT_SESSION_TTL", "forever", "is not a duration"),
    ("CHATKEEP_STORE_URL", "chat.db", "is not a store URL starting with"),
    ("DATABASE_URL", "mysql://db", "is not a store URL starting with"),
    ("CHATKEEP_STORE_TYPE", "mysql", "is not one of: sqlite, memory, file"),
    ("STORAGE_DATABASE_TYPE", "postgres", "is not one of: sqlite, memory, file"),
    ("CHATKEEP_DATA_DIR", "bad\x01dir", "is not a directory path"),
    ("STORAGE_DATABASE_PATH", "a\nb", "is not a directory path"),
    ("CHATKEEP_DATABASE_NAME", "sub/x.db", "is not a file name"),
    ("STORAGE_DATABASE_NAME", "..", "is not a file name"),
    ("CHATKEEP_MAX_MESSAGES", "0", f"is not an integer from 1 to {MAX_WINDOW}"),
    ("MAX_MESSAGES_PER_SESSION", "ten", "is not an integer"),
    ("CHATKEEP_MAX_CONTENT_BYTES", "2g", "is not a size from 1 to"),
    ("CHATKEEP_MAX_CONTENT_BYTES", "1.5m", "is not a size"),
    ("CHATKEEP_DEFAULT_PERSISTENCE", "disk", "is not one of: none, client, redis, durable"),
    ("CHATKEEP_MAX_SESSIONS", "-1", "is not an integer from 1 to"),
    ("SESSION_MAX_SESSIONS", "1.5", "is not an integer"),
    ("CHATKEEP_SWEEP_INTERVAL", "off", "is not a duration (seconds, or like 20m, 1h)"),
    ("SESSION_CLEANUP_INTERVAL", "soon", "is not a duration"),
    ("CHATKEEP_BACKUP_DIR", "\x7f\x02", "is not a directory path"),
    ("CHATKEEP_BACKUP_INTERVAL", "never", "is not a duration (seconds, or like 20m, 1h) or 'off'"),
    ("CHATKEEP_MAX_BACKUPS", "0", "is not an integer from 1 to 100000"),
    ("CHATKEEP_HOST", "bad host", "is not a host name or an IP address"),
    ("API_HOST", "-leading-dash", "is not a host name or an IP address"),
    ("CHATKEEP_PORT", "0", "is not an integer from 1 to 65535"),
    ("API_PORT", "70000", "is not an integer from 1 to 65535"),
    ("CHATKEEP_MAX_REQUEST_BYTES", "0", "is not a size from 1 to"),
    ("CHATKEEP_WS_MAX_FRAME_BYTES", "big", "is not a size from 1 to"),
    ("CHATKEEP_WS_MAX_SESSIONS", "0", "is not an integer from 1 to 100000"),
    ("CHATKEEP_WS_SEND_RATE", "fast", "is not an integer from 1 to 1000000"),
    ("CHATKEEP_WS_SEND_BURST", "0", "is not an integer from 1 to 1000000"),
    ("CHATKEEP_WS_IDLE_TIMEOUT", "0", "is not a duration (seconds, or like 20m, 1h)"),
    ("CHANNEL_REDIS_URL", "postgresql://h/db", "is not a Redis URL"),
    ("CHATKEEP_CHANNEL_REDIS_URL", "redis://", "is not a Redis URL"),
    ("CHATKEEP_API_KEYS", "short:alice", "is not key:owner pairs separated by commas"),
    ("CHATKEEP_API_KEYS", KEY_A, "is not key:owner pairs"),
    ("CHATKEEP_API_KEYS", f"{KEY_A}:", "is not key:owner pairs"),
    ("CHATKEEP_API_KEYS", f"{KEY_A}:alice,{KEY_A}:bob", "is not key:owner pairs"),
    ("CHATKEEP_API_KEYS", f"{KEY_A}:al ice", "is not key:owner pairs"),
    ("CHATKEEP_TOKEN_SECRET", "too-short", "is not a secret of at least 16 characters"),
    ("CHATKEEP_INSECURE_BIND", "maybe", "is not true or false"),
    ("CHATKEEP_REDIS_URL", "sqlite:///x.db", "is not a Redis URL"),
    ("REDIS_URL", "127.0.0.1:6379", "is not a Redis URL"),
    ("CHATKEEP_REDIS_SESSION_TTL", "0", "is not a duration (seconds, or like 20m, 1h) or 'never'"),
    ("REDIS_SESSION_TTL", "long", "is not a duration"),
    ("CHATKEEP_WRITE_BEHIND", "maybe", "is not true or false"),
    ("SESSION_PERSISTENCE_ENABLED", "2", "is not true or false"),
    ("CHATKEEP_WRITE_BEHIND_URL", "redis:/x", "is not a store URL starting with"),
    ("CHATKEEP_SYNC_INTERVAL", "0", "is not a duration (seconds, or like 20m, 1h)"),
    ("SESSION_SYNC_INTERVAL_SECONDS", "-5", "is not a duration"),
]
SECRET_SETTINGS = {s.env_names[0] for s in SETTINGS if s.secret}


@pytest.mark.parametrize(("variable", "text", "reason"), BAD)
def test_a_bad_value_gives_one_line_naming_the_variable(
    variable: str, text: str, reason: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env({variable: text})
    message = str(caught.value)
    shown = "the value (not shown)" if variable in SECRET_SETTINGS else repr(text)
    assert message.startswith(f"{variable}: {shown} {reason}")
    if variable in SECRET_SETTINGS:
        assert text not in message
    assert "\n" not in message
    assert caught.value.name == variable


def test_a_redis_mode_without_a_durable_store_to_write_behind_to_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"^write_behind_url: .*needs a durable store"):
        Config.from_env({"REDIS_URL": "redis://r", "CHATKEEP_STORE_TYPE": "memory"})
    config = Config.from_env({"REDIS_URL": "redis://r", "SESSION_PERSISTENCE_ENABLED": "no"})
    assert config.store.redis_store_url() == "redis://r"
    assert Config.from_env({}).store.redis_store_url() is None


def test_the_documented_example_line() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env({"SESSION_TTL": "abc"})
    assert str(caught.value) == (
        "SESSION_TTL: 'abc' is not a duration (seconds, or like 20m, 1h) or 'never'"
    )


def test_every_variable_has_a_bad_value_case() -> None:
    covered = {case[0] for case in BAD}
    for setting in SETTINGS:
        assert set(setting.env_names) <= covered, setting.name


def test_option_names_follow_the_setting_names() -> None:
    options = {s.name: s.option for s in SETTINGS}
    assert options["store_url"] == "--store"
    assert options["session_ttl"] == "--session-ttl"
    assert options["max_backups"] == "--max-backups"
    assert len(set(options.values())) == len(options)


def test_secret_settings_are_the_credentials() -> None:
    assert {"CHATKEEP_API_KEYS", "CHATKEEP_TOKEN_SECRET"} == SECRET_SETTINGS


def test_auth_is_on_with_keys_or_a_secret_and_credentials_stay_out_of_repr() -> None:
    assert not Config.from_env({}).server.auth_enabled
    keyed = Config.from_env({"CHATKEEP_API_KEYS": f"{KEY_A}:alice"}).server
    signed = Config.from_env({"CHATKEEP_TOKEN_SECRET": SECRET}).server
    assert keyed.auth_enabled
    assert signed.auth_enabled
    assert KEY_A not in repr(keyed)
    assert SECRET not in repr(signed)


def test_typed_api_keys_are_validated_like_text() -> None:
    config = Config.from_env({}, api_keys=((KEY_A, "alice"),), insecure_bind=True)
    assert config.server.api_keys == ((KEY_A, "alice"),)
    assert config.server.insecure_bind is True
    with pytest.raises(ConfigurationError, match=r"^api_keys: the value \(not shown\)"):
        Config.from_env({}, api_keys=(("short", "alice"),))
