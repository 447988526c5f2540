"""The session manager: persistence-mode routing, cache, sweeper, events, backups."""

from chatkeep.manager.backupfile import BackupSection
from chatkeep.manager.backups import BackupInfo
from chatkeep.manager.cache import CacheInfo
from chatkeep.manager.config import ManagerConfig
from chatkeep.manager.conversation import Conversation
from chatkeep.manager.events import Event, EventBus, EventType, Listener
from chatkeep.manager.manager import SessionManager
from chatkeep.manager.sessions import CLIENT_HISTORY, SessionOptions
from chatkeep.manager.sweeper import SweepReport
from chatkeep.stores.base import Appended

__all__ = [
    "CLIENT_HISTORY",
    "Appended",
    "BackupInfo",
    "BackupSection",
    "CacheInfo",
    "Conversation",
    "Event",
    "EventBus",
    "EventType",
    "Listener",
    "ManagerConfig",
    "SessionManager",
    "SessionOptions",
    "SweepReport",
]
