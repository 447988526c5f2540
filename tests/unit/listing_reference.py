"""Sessions, filters and sorts on which a SQL backend's listing must answer exactly as
:func:`chatkeep.core.query.matches` does; shared by the SQL backends' tests."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from chatkeep import Persistence, Session, SessionFilter, SessionSort
from chatkeep.core.models import JSON
from chatkeep.core.query import SortField, matches, sort_value

NOW = datetime(2030, 1, 1, tzinfo=UTC)
DEVICES = ("0b6f5a8e-9f5e-4c53-9a1e-3c1a3c2b7d10", "7d3c1e52-2a71-4f0e-8f5e-2b5d0f7c9a11")
SORTS = [SessionSort(f, d) for f in SortField for d in (True, False)]


def make_session(sid: str, *, minutes: int = 0, **fields: object) -> Session:
    at = NOW + timedelta(minutes=minutes)
    values: dict[str, object] = {
        "id": sid, "owner": None, "device_id": None, "persistence": Persistence.DURABLE,
        "created_at": at, "updated_at": at, "last_activity_at": at,
        "expires_at": at + timedelta(hours=1), "ttl": timedelta(hours=1),
        "max_messages": 100, "metadata": {}, "tags": frozenset(), "version": 1,
        "message_count": 0, "last_seq": 0,
    }  # fmt: skip
    values.update(fields)
    return Session(**values)  # type: ignore[arg-type]


def varied_sessions(
    values: Sequence[JSON],
    *,
    count: int,
    metadata_chance: float,
    name: Callable[[random.Random, int], str],
) -> list[Session]:
    """``count`` sessions that differ in every field a filter or a sort looks at."""
    rnd = random.Random(7)
    out = []
    for i in range(count):
        metadata: dict[str, JSON] = {}
        if rnd.random() < metadata_chance:
            metadata["n"] = rnd.choice(values)
        if rnd.random() < 0.5:
            metadata["k"] = rnd.choice(["v", "w"])
        if rnd.random() < 0.2:
            metadata['q"k'] = 1
        created = rnd.randrange(0, 12) * 5
        active = created + rnd.randrange(0, 4) * 5
        expires = rnd.choice([None, -30, 30, 300])
        messages = rnd.choice([0, 0, 3])
        out.append(
            make_session(
                name(rnd, i),
                minutes=created,
                owner=rnd.choice([None, "alice", "bob"]),
                device_id=rnd.choice([None, *DEVICES]),
                last_activity_at=NOW + timedelta(minutes=active),
                updated_at=NOW + timedelta(minutes=active + rnd.randrange(0, 2)),
                expires_at=None if expires is None else NOW + timedelta(minutes=expires),
                metadata=metadata,
                tags=frozenset(t for t in "abc" if rnd.random() < 0.4),
                message_count=messages,
                last_seq=messages,
            )
        )
    return out


def filters(values: Sequence[JSON]) -> list[SessionFilter]:
    at = NOW + timedelta(minutes=25)
    out = [
        SessionFilter(),
        SessionFilter(include_expired=True),
        SessionFilter(owner="alice"),
        SessionFilter(device_id=DEVICES[0], include_expired=True),
        SessionFilter(tags=frozenset({"a"})),
        SessionFilter(tags=frozenset({"a", "b"}), include_expired=True),
        SessionFilter(metadata={"n": 1, "k": "v"}, include_expired=True),
        SessionFilter(metadata={'q"k': True}, include_expired=True),
        SessionFilter(metadata={"absent": None}, include_expired=True),
        SessionFilter(created_after=at, include_expired=True),
        SessionFilter(created_before=at, include_expired=True),
        SessionFilter(active_after=at, active_before=at + timedelta(minutes=20)),
        SessionFilter(has_messages=True, include_expired=True),
        SessionFilter(has_messages=False, owner="bob"),
    ]
    out += [SessionFilter(metadata={"n": v}, include_expired=True) for v in values]
    return out


def reference(sessions: Sequence[Session], flt: SessionFilter, sort: SessionSort) -> list[str]:
    chosen = [s for s in sessions if matches(s, flt, NOW)]
    chosen.sort(key=lambda s: (sort_value(s, sort), s.id), reverse=sort.descending)
    return [s.id for s in chosen]
