"""Wire models of the device, lock, bulk-update and backup/restore endpoints."""

from __future__ import annotations

from pydantic import AwareDatetime, Field, JsonValue

from chatkeep.core.query import SessionFilter
from chatkeep.core.rules import DEFAULT_LOCK_TTL
from chatkeep.server.routes_sessions import SessionChanges
from chatkeep.server.wire import Wire
from chatkeep.stores.base import ImportReport


class LockIn(Wire):
    agent: str = Field(description="The agent that handles the session's conversation now.")
    ttl: float | None = Field(
        default=DEFAULT_LOCK_TTL.total_seconds(),
        description="Seconds until the lock lapses; null: never.",
    )


class LockCleared(Wire):
    session_id: str
    cleared: bool = Field(description="False if the session had no live lock.")


class BulkFilter(Wire):
    """The filters of `GET /api/sessions`, as a JSON object."""

    owner: str | None = None
    device_id: str | None = None
    tags: list[str] = Field(default_factory=list, description="All must match.")
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    active_after: AwareDatetime | None = None
    active_before: AwareDatetime | None = None
    has_messages: bool | None = None
    include_expired: bool = False

    def session_filter(self, owner: str | None) -> SessionFilter:
        return SessionFilter(
            owner=owner,
            device_id=self.device_id,
            tags=frozenset(self.tags),
            metadata=dict(self.metadata),
            created_after=self.created_after,
            created_before=self.created_before,
            active_after=self.active_after,
            active_before=self.active_before,
            has_messages=self.has_messages,
            include_expired=self.include_expired,
        )


class BulkUpdate(Wire):
    filter: BulkFilter = Field(default_factory=BulkFilter)
    changes: SessionChanges


class BulkUpdated(Wire):
    updated_count: int


class RestoreReport(Wire):
    restored: int
    skipped: int
    failed: int
    dry_run: bool
    errors: list[str] = Field(description='One line per failed record: "line 7: <reason>".')


def restore_report(report: ImportReport) -> RestoreReport:
    return RestoreReport(
        restored=report.restored,
        skipped=report.skipped,
        failed=report.failed,
        dry_run=report.dry_run,
        errors=list(report.errors),
    )
