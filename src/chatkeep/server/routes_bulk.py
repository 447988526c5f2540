"""Changes and transfers of many sessions: bulk update, backup (JSONL) and restore."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from chatkeep.core.models import Persistence
from chatkeep.core.query import MAX_PAGE, SessionFilter
from chatkeep.errors import (
    InvalidInputError,
    SessionExpiredError,
    SessionNotFoundError,
)
from chatkeep.manager import SessionManager
from chatkeep.server.auth import Caller
from chatkeep.server.deps import CallerDep, Manager, own_owner
from chatkeep.server.errors import ERROR_RESPONSES
from chatkeep.server.wire import Envelope
from chatkeep.server.wire_admin import (
    BulkUpdate,
    BulkUpdated,
    RestoreReport,
    restore_report,
)
from chatkeep.stores.base import ImportReport, MergeStrategy, Store

router = APIRouter(tags=["bulk"], responses=ERROR_RESPONSES)

JSONL: Final = "application/x-ndjson"
_LINE_NUMBER = re.compile(r"line (\d+):")
NOT_THE_CALLERS: Final = "is a session of another owner: not restored"


def distinct_stores(manager: SessionManager) -> list[Store]:
    """Each configured store once (one store may serve several modes)."""
    found: dict[int, Store] = {}
    for store in manager.stores.values():
        found.setdefault(id(store), store)
    return list(found.values())


@router.post(
    "/api/sessions/bulk-update",
    summary="Change every session a filter matches",
    response_model=Envelope[BulkUpdated],
)
async def bulk_update(
    body: BulkUpdate, manager: Manager, caller: CallerDep
) -> Envelope[BulkUpdated]:
    """`filter` takes the filters of `GET /api/sessions`, `changes` the fields of `PATCH`.
    With authentication on, only the caller's sessions are changed (a filter `owner` is
    ignored) and `changes.owner` can only be the caller."""
    changes_in = body.changes
    if changes_in.expected_version is not None:
        raise InvalidInputError(
            "changes.expectedVersion", "applies to one session, not to a bulk update"
        )
    changes = {name: getattr(changes_in, name) for name in changes_in.model_fields_set}
    changes.pop("expected_version", None)
    if "owner" in changes:
        changes["owner"] = own_owner(caller, changes_in.owner, "changes.owner")
    owner = caller.owner if caller.authenticated else body.filter.owner
    count = await manager.bulk_update(body.filter.session_filter(owner), changes)
    return Envelope(data=BulkUpdated(updated_count=count))


@router.post(
    "/api/backup",
    summary="Every session (of the caller) with its messages, as JSONL",
    response_class=StreamingResponse,
    responses={
        200: {"content": {JSONL: {}}, "description": "A header line, then one session per line."}
    },
)
async def backup(manager: Manager, caller: CallerDep) -> StreamingResponse:
    """The export format of the library: `POST /api/restore` takes it back. Expired
    sessions are included. With authentication on, only the caller's sessions."""
    flt = SessionFilter(owner=caller.owner if caller.authenticated else None, include_expired=True)
    return StreamingResponse(_export(distinct_stores(manager), flt), media_type=JSONL)


async def _export(stores: list[Store], flt: SessionFilter) -> AsyncIterator[str]:
    for index, store in enumerate(stores):
        first = True
        async for line in store.export_sessions(flt):
            if not (first and index > 0):
                yield line
            first = False


@router.post(
    "/api/restore",
    summary="Restore sessions from a backup (JSONL body)",
    response_model=Envelope[RestoreReport],
)
async def restore(
    request: Request,
    manager: Manager,
    caller: CallerDep,
    strategy: MergeStrategy = MergeStrategy.SKIP_EXISTING,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> Envelope[RestoreReport]:
    """Each session goes to the store of its persistence mode. A line that cannot be read
    or restored counts as failed (`errors` says why); the others are restored. With
    authentication on, a session of another owner (in the body, or under the same id
    here) is never restored: it counts as failed. `dryRun`: report, change nothing."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("body", "must be UTF-8 JSONL") from None
    plan = _Plan(manager, caller)
    for number, line in enumerate(text.split("\n"), start=1):
        await plan.add(number, line)
    total = ImportReport(dry_run=dry_run, failed=len(plan.refused), errors=plan.refused)
    for store, lines in plan.lines.items():
        report = await manager.import_lines(store, lines, strategy=strategy, dry_run=dry_run)
        total.restored += report.restored
        total.skipped += report.skipped
        total.failed += report.failed
        total.errors.extend(report.errors)
    total.errors.sort(key=_line_number)
    return Envelope(data=restore_report(total))


def _line_number(error: str) -> int:
    found = _LINE_NUMBER.match(error)
    return int(found[1]) if found else 0


class _Plan:
    """Which store each line goes to, keeping its line number (other stores get a blank
    line in its place); the lines refused before any store sees them."""

    def __init__(self, manager: SessionManager, caller: Caller) -> None:
        self._manager = manager
        self._caller = caller
        self._stores = distinct_stores(manager)
        self.lines: dict[Store, list[str]] = {store: [] for store in self._stores}
        self.refused: list[str] = []
        self._own: set[str] | None = None

    async def add(self, number: int, line: str) -> None:
        try:
            target = await self._target(line)
        except InvalidInputError as exc:
            self.refused.append(f"line {number}: {exc}")
            target = None
        for store, lines in self.lines.items():
            lines.append(line if store is target else "")

    async def _target(self, line: str) -> Store:
        """The store the line goes to: the first store for a header, or for a line it
        cannot read (which that store then reports as failed, like any unreadable line)."""
        try:
            session = json.loads(line)["session"]
            session_id, owner = str(session["id"]), session["owner"]
            mode = Persistence(session["persistence"])
        except (ValueError, TypeError, KeyError):
            return self._stores[0]
        store = self._manager.stores.get(mode)
        if store is None:
            raise InvalidInputError(
                "session.persistence", f"no store is configured for {mode.value!r} here"
            )
        if self._caller.authenticated and owner != self._caller.owner:
            raise InvalidInputError("session.owner", f"{session_id!r} {NOT_THE_CALLERS}")
        await self._check_existing(session_id, mode)
        return store

    async def _check_existing(self, session_id: str, mode: Persistence) -> None:
        """Refuse to replace a session of another owner, or one of another mode."""
        try:
            existing = await self._manager.get_session(session_id)
        except SessionNotFoundError:
            return
        except SessionExpiredError:
            if self._caller.authenticated and session_id not in await self._own_ids():
                raise InvalidInputError("session.id", f"{session_id!r} {NOT_THE_CALLERS}") from None
            return
        except InvalidInputError:
            return
        if not self._caller.may_see(existing.owner):
            raise InvalidInputError("session.id", f"{session_id!r} {NOT_THE_CALLERS}")
        if existing.persistence is not mode:
            raise InvalidInputError(
                "session.persistence",
                f"session {session_id!r} is {existing.persistence.value!r} here: the mode is fixed",
            )

    async def _own_ids(self) -> set[str]:
        """The ids of the caller's sessions, expired ones included (read once, when an
        expired session is in the way: its owner cannot be read otherwise)."""
        if self._own is None:
            flt = SessionFilter(owner=self._caller.owner, include_expired=True)
            self._own, cursor = set(), None
            while True:
                page = await self._manager.list_sessions(flt, "created_at", MAX_PAGE, cursor)
                self._own.update(session.id for session in page.sessions)
                cursor = page.next_cursor
                if cursor is None:
                    break
        return self._own
