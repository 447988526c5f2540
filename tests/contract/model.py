"""A deliberately plain reference model of a store, for the stateful test.

Sessions are dicts of python lists; nothing here reuses chatkeep's own rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chatkeep.errors import (
    InvalidInputError,
    SessionExistsError,
    SessionExpiredError,
    SessionNotFoundError,
)


@dataclass(frozen=True)
class Msg:
    seq: int
    key: str | None
    content: str


@dataclass
class Sess:
    ttl: timedelta | None
    window: int
    expires_at: datetime | None
    last_seq: int = 0
    messages: list[Msg] = field(default_factory=list)

    def renew(self, now: datetime) -> None:
        self.expires_at = None if self.ttl is None else now + self.ttl

    def trim(self) -> None:
        while len(self.messages) > self.window:
            self.messages.pop(0)


class Model:
    def __init__(self) -> None:
        self.sessions: dict[str, Sess] = {}

    def expired(self, now: datetime) -> set[str]:
        return {
            sid
            for sid, s in self.sessions.items()
            if s.expires_at is not None and s.expires_at <= now
        }

    def live(self, sid: str, now: datetime) -> Sess:
        if sid not in self.sessions:
            raise SessionNotFoundError(sid)
        if sid in self.expired(now):
            raise SessionExpiredError(sid)
        return self.sessions[sid]

    def create(self, sid: str, ttl: timedelta | None, window: int, now: datetime) -> None:
        if sid in self.sessions:
            raise SessionExistsError(sid)
        self.sessions[sid] = Sess(ttl, window, None if ttl is None else now + ttl)

    def append(self, sid: str, batch: list[tuple[str | None, str]], now: datetime) -> list[Msg]:
        s = self.live(sid, now)
        by_key = {m.key: m for m in s.messages if m.key is not None}
        results: list[Msg] = []
        added = False
        for key, content in batch:
            if key is not None and key in by_key:
                results.append(by_key[key])
                continue
            s.last_seq += 1
            msg = Msg(s.last_seq, key, content)
            if key is not None:
                by_key[key] = msg
            s.messages.append(msg)
            results.append(msg)
            added = True
        if added:
            s.trim()
            s.renew(now)
        return results

    def pop(self, sid: str, now: datetime) -> Msg | None:
        s = self.live(sid, now)
        if not s.messages:
            return None
        s.renew(now)
        return s.messages.pop()

    def clear(self, sid: str, now: datetime) -> int:
        s = self.live(sid, now)
        count = len(s.messages)
        if count:
            s.messages = []
            s.renew(now)
        return count

    def set_window(self, sid: str, window: int, now: datetime) -> None:
        s = self.live(sid, now)
        s.window = window
        s.trim()
        s.renew(now)

    def touch(self, sid: str, now: datetime) -> None:
        self.live(sid, now).renew(now)

    def delete(self, sid: str) -> bool:
        return self.sessions.pop(sid, None) is not None

    def cleanup(self, now: datetime) -> int:
        gone = self.expired(now)
        for sid in gone:
            del self.sessions[sid]
        return len(gone)

    def read(
        self,
        sid: str,
        now: datetime,
        last: int | None,
        after: int | None,
        before: int | None,
        limit: int | None,
    ) -> list[Msg]:
        s = self.live(sid, now)
        if last is not None and limit is not None:
            raise InvalidInputError("last", "cannot be combined with limit")
        out = [
            m
            for m in s.messages
            if (after is None or m.seq > after) and (before is None or m.seq < before)
        ]
        if last is not None:
            out = out[-last:]
        if limit is not None:
            out = out[:limit]
        return out

    def listed(self, now: datetime) -> dict[str, int]:
        gone = self.expired(now)
        return {sid: len(s.messages) for sid, s in self.sessions.items() if sid not in gone}
