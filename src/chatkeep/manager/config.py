"""The settings of a :class:`~chatkeep.manager.SessionManager`, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from chatkeep.core.models import Persistence
from chatkeep.errors import ConfigurationError

DEFAULT_SWEEP_INTERVAL = timedelta(seconds=60)
DEFAULT_MAX_SESSIONS = 10_000
DEFAULT_MAX_BACKUPS = 10
DEFAULT_LISTENER_QUEUE = 1000


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    """How a manager routes, caches, sweeps and backs up sessions.

    ``sweep_interval`` / ``backup_interval`` of ``None`` turn the background job off
    (``sweep()`` and ``backup_now()`` still work). ``expired_retention`` is how long an
    expired session is kept (readable with ``include_expired``) before a sweep deletes it.
    """

    default_persistence: Persistence = Persistence.DURABLE
    max_sessions: int = DEFAULT_MAX_SESSIONS
    sweep_interval: timedelta | None = DEFAULT_SWEEP_INTERVAL
    expired_retention: timedelta = timedelta(0)
    backup_dir: Path | None = None
    backup_interval: timedelta | None = None
    max_backups: int = DEFAULT_MAX_BACKUPS
    listener_queue_size: int = DEFAULT_LISTENER_QUEUE

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "default_persistence", Persistence(self.default_persistence))
        except ValueError:
            choices = ", ".join(p.value for p in Persistence)
            raise ConfigurationError(
                "default_persistence", f"{self.default_persistence!r} is not one of: {choices}"
            ) from None
        _positive_int("max_sessions", self.max_sessions)
        _positive_int("max_backups", self.max_backups)
        _positive_int("listener_queue_size", self.listener_queue_size)
        _optional_interval("sweep_interval", self.sweep_interval)
        _optional_interval("backup_interval", self.backup_interval)
        retention = self.expired_retention
        if not isinstance(retention, timedelta) or retention < timedelta(0):
            raise ConfigurationError("expired_retention", "must be a timedelta of zero or more")
        if self.backup_dir is not None:
            object.__setattr__(self, "backup_dir", Path(self.backup_dir))
        elif self.backup_interval is not None:
            raise ConfigurationError("backup_interval", "scheduled backups need a backup_dir")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(name, f"must be a positive integer, got {value!r}")


def _optional_interval(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ConfigurationError(name, f"must be a positive timedelta or None, got {value!r}")
