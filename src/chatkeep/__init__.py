"""chatkeep: keep chat and AI-agent conversations alive.

>>> async with chatkeep.open_store("sqlite:///chat.db") as store:
...     s = await store.create_session(owner="alice")
...     await store.append_messages(s.id, [chatkeep.NewMessage(role="user", content="hi")])
"""

from chatkeep.core.clock import Clock, FakeClock, SystemClock
from chatkeep.core.models import (
    JSON,
    UNSET,
    Message,
    NewMessage,
    Persistence,
    Role,
    Session,
    SessionLock,
    SessionUpdate,
)
from chatkeep.core.query import SearchHit, SessionFilter, SessionPage, SessionSort, SortField
from chatkeep.core.rules import SessionDefaults
from chatkeep.core.validation import Limits
from chatkeep.errors import (
    ChatkeepError,
    ConfigurationError,
    CorruptDataError,
    ImmutableSettingError,
    InvalidInputError,
    MissingDependencyError,
    SessionExistsError,
    SessionExpiredError,
    SessionNotFoundError,
    StoreClosedError,
    StoreUnavailableError,
    TransactionConflictError,
    VersionConflictError,
)
from chatkeep.stores import (
    HealthReport,
    ImportReport,
    MergeStrategy,
    OptimizeReport,
    Store,
    StoreStats,
    open_store,
)

__version__ = "0.1.0"

__all__ = [
    "JSON",
    "UNSET",
    "ChatkeepError",
    "Clock",
    "ConfigurationError",
    "CorruptDataError",
    "FakeClock",
    "HealthReport",
    "ImmutableSettingError",
    "ImportReport",
    "InvalidInputError",
    "Limits",
    "MergeStrategy",
    "Message",
    "MissingDependencyError",
    "NewMessage",
    "OptimizeReport",
    "Persistence",
    "Role",
    "SearchHit",
    "Session",
    "SessionDefaults",
    "SessionExistsError",
    "SessionExpiredError",
    "SessionFilter",
    "SessionLock",
    "SessionNotFoundError",
    "SessionPage",
    "SessionSort",
    "SessionUpdate",
    "SortField",
    "Store",
    "StoreClosedError",
    "StoreStats",
    "StoreUnavailableError",
    "SystemClock",
    "TransactionConflictError",
    "VersionConflictError",
    "__version__",
    "open_store",
]
