"""The one error hierarchy of chatkeep.

Every error a user can see derives from :class:`ChatkeepError`. Backends catch
their driver's errors at their boundary and raise one of these ``from`` it.
"""

from __future__ import annotations


class ChatkeepError(Exception):
    """Base class of every chatkeep error."""


class InvalidInputError(ChatkeepError, ValueError):
    """A value given by the caller is not acceptable; nothing was changed.

    ``field`` names the offending input (``"metadata"``, ``"messages[2].role"``...).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class SessionNotFoundError(ChatkeepError, LookupError):
    """No session has this id."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} not found")
        self.session_id = session_id


class SessionExistsError(ChatkeepError):
    """A session with this id exists already."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} already exists")
        self.session_id = session_id


class SessionExpiredError(ChatkeepError, LookupError):
    """The session exists but has expired; it reads as gone until cleaned up."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} has expired")
        self.session_id = session_id


class VersionConflictError(ChatkeepError):
    """An update named an ``expected_version`` that is no longer current."""

    def __init__(self, session_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"session {session_id!r} is at version {actual}, not the expected {expected}"
        )
        self.session_id = session_id
        self.expected = expected
        self.actual = actual


class ImmutableSettingError(ChatkeepError):
    """A setting that is fixed at creation (such as ``persistence``) was to change."""

    def __init__(self, setting: str, message: str | None = None) -> None:
        super().__init__(message or f"{setting} cannot be changed after the session is created")
        self.setting = setting


class ConfigurationError(ChatkeepError):
    """A configuration value is missing or invalid. ``name`` is the variable or option."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.reason = message


class MissingDependencyError(ChatkeepError, ImportError):
    """An optional driver is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'chatkeep[{extra}]'"
        )
        self.package = package
        self.extra = extra


class StoreUnavailableError(ChatkeepError, ConnectionError):
    """The store cannot be reached or has failed; the operation was not performed."""


class TransactionConflictError(ChatkeepError):
    """A transaction lost a race with another writer and changed nothing; run it again.

    Single operations are retried by the store; a ``store.transaction()`` block, which
    the store cannot run again by itself, raises this to its caller.
    """


class StoreClosedError(ChatkeepError, RuntimeError):
    """The store was used after it was closed."""

    def __init__(self) -> None:
        super().__init__("the store is closed")


class CorruptDataError(ChatkeepError):
    """Data found in the store cannot be decoded; only the named session is affected."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"corrupt data in {where}: {message}")
        self.where = where
