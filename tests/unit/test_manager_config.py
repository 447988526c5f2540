from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from chatkeep.core.models import Persistence
from chatkeep.errors import ConfigurationError
from chatkeep.manager import ManagerConfig


def test_defaults() -> None:
    config = ManagerConfig()
    assert config.default_persistence is Persistence.DURABLE
    assert config.max_sessions == 10_000
    assert config.sweep_interval == timedelta(seconds=60)
    assert config.expired_retention == timedelta(0)
    assert config.backup_dir is None
    assert config.backup_interval is None
    assert config.max_backups == 10


def test_a_mode_given_as_text_becomes_the_enum() -> None:
    config = ManagerConfig(default_persistence="none")  # type: ignore[arg-type]
    assert config.default_persistence is Persistence.NONE


def test_backup_dir_given_as_text_becomes_a_path(tmp_path: Path) -> None:
    config = ManagerConfig(backup_dir=str(tmp_path))  # type: ignore[arg-type]
    assert config.backup_dir == tmp_path


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"default_persistence": "disk"}, "default_persistence"),
        ({"max_sessions": 0}, "max_sessions"),
        ({"max_sessions": True}, "max_sessions"),
        ({"max_backups": -1}, "max_backups"),
        ({"listener_queue_size": 0}, "listener_queue_size"),
        ({"sweep_interval": timedelta(0)}, "sweep_interval"),
        ({"sweep_interval": 60}, "sweep_interval"),
        ({"backup_interval": timedelta(seconds=-1)}, "backup_interval"),
        ({"expired_retention": timedelta(seconds=-1)}, "expired_retention"),
        ({"backup_interval": timedelta(minutes=5)}, "backup_interval"),
    ],
)
def test_bad_values_name_the_setting(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ManagerConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.name == field
    assert str(info.value).startswith(f"{field}: ")


def test_sweeps_and_scheduled_backups_can_be_configured(tmp_path: Path) -> None:
    config = ManagerConfig(
        sweep_interval=None, backup_dir=tmp_path, backup_interval=timedelta(minutes=10)
    )
    assert config.sweep_interval is None
    assert config.backup_interval == timedelta(minutes=10)
