"""Configuration: one frozen dataclass per concern, read from the environment in one place.

Every setting has a name (``session_ttl``), an environment variable ``CHATKEEP_<NAME>``,
the names other tools use for the same thing where they exist (``SESSION_TTL``), and a
command-line option (``--session-ttl``). Precedence: an explicit override (a CLI
option, or a keyword of :meth:`Config.from_env`) > ``CHATKEEP_<NAME>`` > the other
names, in the order listed > the default. A bad value raises
:class:`~chatkeep.errors.ConfigurationError` naming where it came from.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from chatkeep.config_values import (
    NUMBER,
    ApiKeys,
    Choice,
    Directory,
    Duration,
    FileName,
    Flag,
    Host,
    Integer,
    Kind,
    RedisUrl,
    Secret,
    Size,
    StoreUrl,
)
from chatkeep.core.models import Persistence
from chatkeep.core.rules import DEFAULT_MAX_MESSAGES, DEFAULT_TTL, SessionDefaults
from chatkeep.core.validation import MAX_WINDOW, Limits
from chatkeep.errors import ConfigurationError
from chatkeep.manager.config import ManagerConfig
from chatkeep.stores.tiered_options import behind_url, tier_url

DEFAULT_DATA_DIR = Path("chatkeep-data")
DEFAULT_DATABASE_NAME = "chatkeep.db"
DEFAULT_STORE_URL = f"sqlite:///{DEFAULT_DATA_DIR / DEFAULT_DATABASE_NAME}"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_REQUEST_BYTES = 8 << 20
DEFAULT_WS_MAX_FRAME_BYTES = 2 << 20
DEFAULT_WS_MAX_SESSIONS = 20
DEFAULT_WS_SEND_RATE = 20
DEFAULT_WS_SEND_BURST = 40
DEFAULT_WS_IDLE_TIMEOUT = timedelta(seconds=60)
DEFAULT_REDIS_SESSION_TTL = timedelta(minutes=20)
DEFAULT_SYNC_INTERVAL = timedelta(seconds=1)


class StoreType(enum.StrEnum):
    """The embedded stores that ``STORAGE_DATABASE_TYPE`` can choose."""

    SQLITE = "sqlite"
    MEMORY = "memory"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Setting:
    """One configuration value and the ways to give it."""

    name: str
    kind: Kind
    help: str
    aliases: tuple[str, ...] = ()
    """Other environment variables that give it, after ``CHATKEEP_<NAME>``."""
    flag: str | None = None
    millis: tuple[str, ...] = ()
    """Aliases whose plain numbers are milliseconds, as in the systems that use them."""
    secret: bool = False
    """Its value is never shown, not even in an error message."""

    @property
    def env_names(self) -> tuple[str, ...]:
        return (f"CHATKEEP_{self.name.upper()}", *self.aliases)

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "store_url",
        StoreUrl(),
        "The store to use; wins over --store-type and --data-dir.",
        ("DATABASE_URL",),
        flag="--store",
    ),
    Setting(
        "store_type",
        Choice(StoreType),
        "The embedded store kept in --data-dir when no store URL is given.",
        ("STORAGE_DATABASE_TYPE",),
    ),
    Setting("data_dir", Directory(), "Where the embedded store lives.", ("STORAGE_DATABASE_PATH",)),
    Setting(
        "database_name", FileName(), "The SQLite file in --data-dir.", ("STORAGE_DATABASE_NAME",)
    ),
    Setting(
        "redis_url",
        RedisUrl(),
        "The Redis server of the redis persistence mode (off when not given).",
        ("REDIS_URL",),
    ),
    Setting(
        "redis_session_ttl",
        Duration(off="never"),
        "With write-behind, how long a session stays in Redis without a write (it stays in"
        " the durable store).",
        ("REDIS_SESSION_TTL",),
    ),
    Setting(
        "write_behind",
        Flag(),
        "Write redis-mode sessions behind to a durable store.",
        ("SESSION_PERSISTENCE_ENABLED",),
    ),
    Setting(
        "write_behind_url",
        StoreUrl(),
        "The durable store of redis-mode sessions (default: next to --store, apart from it).",
    ),
    Setting(
        "sync_interval",
        Duration(),
        "How often changes of redis-mode sessions are synced to the durable store.",
        ("SESSION_SYNC_INTERVAL_SECONDS",),
    ),
    Setting(
        "session_ttl",
        Duration(off="never"),
        "How long a session lives after its last activity (SESSION_TTL: plain numbers are"
        " milliseconds).",
        ("SESSION_TTL", "SESSION_EXPIRY_SECONDS", "DEFAULT_SESSION_TTL"),
        millis=("SESSION_TTL",),
    ),
    Setting(
        "max_messages",
        Integer(1, MAX_WINDOW),
        "Messages kept per session (older ones are dropped).",
        ("MAX_MESSAGES_PER_SESSION",),
    ),
    Setting("max_content_bytes", Size(1 << 30), "The largest message content accepted."),
    Setting("default_persistence", Choice(Persistence), "The persistence mode of new sessions."),
    Setting(
        "max_sessions",
        Integer(1, 10_000_000),
        "Sessions the manager keeps loaded in memory.",
        ("SESSION_MAX_SESSIONS",),
    ),
    Setting(
        "sweep_interval",
        Duration(),
        "How often expired sessions are swept.",
        ("SESSION_CLEANUP_INTERVAL",),
    ),
    Setting("backup_dir", Directory(), "Where backups go (default: <data dir>/backups)."),
    Setting("backup_interval", Duration(off="off"), "How often to write a backup."),
    Setting("max_backups", Integer(1, 100_000), "Backups kept; older ones are deleted."),
    Setting("host", Host(), "The address the server binds to.", ("API_HOST",)),
    Setting("port", Integer(1, 65_535), "The port the server listens on.", ("API_PORT",)),
    Setting("max_request_bytes", Size(1 << 30), "The largest request body the server accepts."),
    Setting(
        "ws_max_frame_bytes",
        Size(1 << 30),
        "The largest WebSocket frame accepted; a larger one closes the connection.",
    ),
    Setting("ws_max_sessions", Integer(1, 100_000), "Sessions one WebSocket connection may join."),
    Setting(
        "ws_send_rate",
        Integer(1, 1_000_000),
        "Frames per second a WebSocket connection may send, on average.",
    ),
    Setting(
        "ws_send_burst",
        Integer(1, 1_000_000),
        "Frames a WebSocket connection may send at once, above the rate.",
    ),
    Setting(
        "ws_idle_timeout",
        Duration(),
        "A WebSocket connection that sends nothing for this long is closed.",
    ),
    Setting(
        "channel_redis_url",
        RedisUrl(),
        "The Redis whose pub/sub carries live events between server instances (?prefix= names"
        " its channels).",
        ("CHANNEL_REDIS_URL",),
    ),
    Setting(
        "api_keys",
        ApiKeys(),
        "API keys and their owners (key1:owner1,key2:owner2); turns authentication on.",
        secret=True,
    ),
    Setting(
        "token_secret",
        Secret(),
        "The secret that signs bearer tokens (chatkeep token); turns authentication on.",
        secret=True,
    ),
    Setting(
        "insecure_bind",
        Flag(),
        "Let chatkeep serve bind beyond loopback without authentication.",
    ),
)
SETTINGS_BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str = DEFAULT_STORE_URL
    default_ttl: timedelta | None = DEFAULT_TTL
    max_messages: int = DEFAULT_MAX_MESSAGES
    max_content_bytes: int = Limits().max_content_bytes
    redis_url: str | None = field(default=None, repr=False)
    redis_session_ttl: timedelta | None = DEFAULT_REDIS_SESSION_TTL
    write_behind: bool = True
    write_behind_url: str | None = field(default=None, repr=False)
    sync_interval: timedelta = DEFAULT_SYNC_INTERVAL

    def limits(self) -> Limits:
        return Limits(max_content_bytes=self.max_content_bytes)

    def redis_store_url(self) -> str | None:
        """The store of the redis persistence mode (None: not configured): Redis,
        written behind to a durable store unless ``write_behind`` is off."""
        if self.redis_url is None:
            return None
        if not self.write_behind:
            return self.redis_url
        return tier_url(
            self.redis_url,
            self.write_behind_url or behind_url(self.url),
            self.sync_interval,
            self.redis_session_ttl,
        )


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    ws_max_frame_bytes: int = DEFAULT_WS_MAX_FRAME_BYTES
    ws_max_sessions: int = DEFAULT_WS_MAX_SESSIONS
    ws_send_rate: int = DEFAULT_WS_SEND_RATE
    ws_send_burst: int = DEFAULT_WS_SEND_BURST
    ws_idle_timeout: timedelta = DEFAULT_WS_IDLE_TIMEOUT
    channel_redis_url: str | None = None
    api_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    token_secret: str | None = field(default=None, repr=False)
    insecure_bind: bool = False

    @property
    def auth_enabled(self) -> bool:
        """True when callers must authenticate (API keys or a token secret are set)."""
        return bool(self.api_keys) or self.token_secret is not None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        """True if only this machine can reach the address."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class Config:
    store: StoreConfig = field(default_factory=StoreConfig)
    manager: ManagerConfig = field(
        default_factory=lambda: ManagerConfig(backup_dir=DEFAULT_DATA_DIR / "backups")
    )
    server: ServerConfig = field(default_factory=ServerConfig)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, /, **overrides: object) -> Config:
        """Read every setting, validate it, and build the configuration.

        ``overrides`` are keyed by setting name (``session_ttl="20m"``); ``None`` means
        "not given". Values may be text, as in the environment, or already typed.
        """
        unknown = sorted(set(overrides) - set(SETTINGS_BY_NAME))
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
        got: dict[str, Any] = {}
        for setting in SETTINGS:
            source, raw = _source(setting, environ, overrides.get(setting.name))
            if source:
                got[setting.name] = _parse(setting, source, raw)
        data_dir: Path = got.get("data_dir", DEFAULT_DATA_DIR)
        url = got.get("store_url") or _local_url(
            got.get("store_type", StoreType.SQLITE),
            data_dir,
            got.get("database_name", DEFAULT_DATABASE_NAME),
        )
        got.setdefault("backup_dir", data_dir / "backups")
        store = StoreConfig(url=url, **_fields(StoreConfig, got, session_ttl="default_ttl"))
        store.redis_store_url()  # a tier that cannot be built stops here
        return cls(
            store,
            ManagerConfig(**_fields(ManagerConfig, got)),
            ServerConfig(**_fields(ServerConfig, got)),
        )

    def session_defaults(self) -> SessionDefaults:
        """What a new session gets when its creator does not say."""
        return SessionDefaults(
            ttl=self.store.default_ttl,
            max_messages=self.store.max_messages,
            persistence=self.manager.default_persistence,
        )


def _source(setting: Setting, environ: Mapping[str, str], override: object) -> tuple[str, object]:
    """Where the setting's value comes from and the raw value; ``("", None)`` if nowhere.

    Empty (or blank) environment variables count as not set.
    """
    if override is not None:
        return setting.name, override
    for name in setting.env_names:
        if environ.get(name, "").strip():
            return name, environ[name]
    return "", None


def _parse(setting: Setting, source: str, raw: object) -> object:
    if source in setting.millis and isinstance(raw, str) and NUMBER.fullmatch(raw.strip()):
        raw = raw.strip() + "ms"
    try:
        return setting.kind.parse(raw)
    except ValueError:
        shown = raw if isinstance(raw, str) else str(raw)
        told = "the value (not shown)" if setting.secret else repr(shown)
        raise ConfigurationError(source, f"{told} is not {setting.kind.accepts}") from None


def _fields(kind: type, got: Mapping[str, Any], **renamed: str) -> dict[str, Any]:
    """The values in ``got`` (renamed as asked) that are fields of the dataclass ``kind``."""
    names = {f.name for f in dataclasses.fields(kind)}
    pairs = ((renamed.get(name, name), value) for name, value in got.items())
    return {name: value for name, value in pairs if name in names}


def _local_url(kind: StoreType, data_dir: Path, database_name: str) -> str:
    """The URL of the embedded store kept in ``data_dir``."""
    if kind is StoreType.MEMORY:
        return "memory://"
    if kind is StoreType.FILE:
        return f"file://{data_dir / 'sessions'}"
    return f"sqlite:///{data_dir / database_name}"
