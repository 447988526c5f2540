"""The options of a Redis store written behind to a durable store.

They are query options of the ``redis://`` URL, next to Redis's own::

    redis://127.0.0.1:6379/0?prefix=chat&write_behind=sqlite%3A%2F%2F%2Fhistory.db

``write_behind`` (the durable store's URL, percent-encoded) turns the tier on; the
others tune it: ``sync_interval`` (seconds between syncs, default 1), ``idle_ttl``
(seconds a session stays in Redis without a write, default 1200; ``0``: no limit),
``sync_batch`` (changes per durable transaction, default 500), ``claim_idle`` (seconds
after which a silent worker's unsynced changes are taken over, default 30) and
``drain_timeout`` (seconds a clean shutdown spends syncing what is left, default 10).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

from chatkeep.errors import ConfigurationError
from chatkeep.stores.redis_options import number_option

DEFAULT_SYNC_INTERVAL = 1.0
DEFAULT_IDLE_TTL = 1200.0
DEFAULT_BATCH = 500
DEFAULT_CLAIM_IDLE = 30.0
DEFAULT_DRAIN_TIMEOUT = 10.0
DURABLE_SCHEMES = ("sqlite", "file", "postgresql", "postgres")
_SECONDS = "a number of seconds > 0"
_NAMES = ("write_behind", "sync_interval", "idle_ttl", "sync_batch", "claim_idle", "drain_timeout")


@dataclass(frozen=True, slots=True)
class TierOptions:
    durable_url: str
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    idle_ttl: float | None = DEFAULT_IDLE_TTL
    """None: sessions stay in Redis for as long as they live."""
    batch: int = DEFAULT_BATCH
    claim_idle: float = DEFAULT_CLAIM_IDLE
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT

    @property
    def idle_millis(self) -> int | None:
        return None if self.idle_ttl is None else max(int(self.idle_ttl * 1000), 1)

    @classmethod
    def split(cls, options: Mapping[str, str]) -> tuple[TierOptions | None, dict[str, str]]:
        """The tier's options (None: no ``write_behind``) and the rest, for Redis."""
        names = _NAMES
        mine = {k: v for k, v in options.items() if k in names}
        rest = {k: v for k, v in options.items() if k not in names}
        if "write_behind" not in mine:
            if mine:
                raise ConfigurationError(
                    sorted(mine)[0], "is an option of write-behind: give write_behind too"
                )
            return None, rest
        durable = mine["write_behind"].strip()
        scheme = durable.partition("://")[0].lower()
        if "://" not in durable or scheme not in DURABLE_SCHEMES:
            raise ConfigurationError(
                "write_behind",
                "needs the URL of a durable store (sqlite://, file:// or postgresql://)",
            )
        idle = mine.get("idle_ttl")
        return (
            cls(
                durable,
                number_option(mine, "sync_interval", DEFAULT_SYNC_INTERVAL, float, _SECONDS),
                None
                if idle is not None and idle.strip() in ("0", "0.0")
                else number_option(mine, "idle_ttl", DEFAULT_IDLE_TTL, float, _SECONDS),
                int(number_option(mine, "sync_batch", DEFAULT_BATCH, int, "a number >= 1")),
                number_option(mine, "claim_idle", DEFAULT_CLAIM_IDLE, float, _SECONDS),
                number_option(mine, "drain_timeout", DEFAULT_DRAIN_TIMEOUT, float, _SECONDS),
            ),
            rest,
        )


def behind_url(store_url: str) -> str:
    """Where a Redis tier keeps its durable copy by default: next to the durable store
    at ``store_url`` but apart from it (its sessions must not be found there too): a
    sibling SQLite file or directory, or a PostgreSQL schema of its own."""
    scheme, _, rest = store_url.partition("://")
    scheme = scheme.lower()
    path, sep, query = rest.partition("?")
    if scheme == "sqlite":
        stem, dot, suffix = path.rpartition(".")
        path = f"{stem}-redis.{suffix}" if dot and "/" not in suffix else f"{path}-redis"
        return f"{scheme}://{path}{sep}{query}"
    if scheme == "file":
        return f"{scheme}://{path.rstrip('/')}-redis{sep}{query}"
    if scheme in ("postgresql", "postgres"):
        options = dict(parse_qsl(query, keep_blank_values=True))
        schema = options.get("schema", "public")
        options["schema"] = "chatkeep_redis" if schema == "public" else f"{schema}_redis"
        return f"{scheme}://{path}?{urlencode(options)}"
    raise ConfigurationError(
        "write_behind_url",
        f"the store is {scheme}://, which keeps nothing: write-behind needs a durable store"
        " (sqlite://, file:// or postgresql://)",
    )


def tier_url(
    redis_url: str, durable_url: str, sync_interval: timedelta, idle_ttl: timedelta | None
) -> str:
    """The URL of a Redis store at ``redis_url`` written behind to ``durable_url``."""
    TierOptions.split({"write_behind": durable_url})  # refuses a store that is not durable
    options = {
        "write_behind": durable_url,
        "sync_interval": f"{sync_interval.total_seconds():g}",
        "idle_ttl": "0" if idle_ttl is None else f"{idle_ttl.total_seconds():g}",
    }
    return f"{redis_url}{'&' if '?' in redis_url else '?'}{urlencode(options)}"
