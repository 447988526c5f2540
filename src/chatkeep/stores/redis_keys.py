"""Where the Redis backend keeps things: every key starts with ``<prefix>:``.

=============================  ======  ===================================================
key                            type    holds
=============================  ======  ===================================================
``P:s:<session id>``           string  the session record (JSON, see ``redis_rows``)
``P:m:<session id>``           zset    the messages (member: JSON record, score: seq)
``P:i:<session id>``           hash    message id -> seq (idempotency keys)
``P:w:<session id>``           string  the advisory write lock (a transaction's token)
``P:by:<field>``               zset    every session id, scored by ``<field>`` (micros)
``P:o:<field>:<owner>``        zset    the owner's session ids, scored by ``<field>``
``P:expiry``                   zset    ids of sessions that expire, scored by expires_at
``P:outbox``                   stream  write-behind: changes not yet in the durable store
``P:outbox:waiting``           hash    write-behind: session id -> its changes in the outbox
``P:outbox:dead``              stream  write-behind: changes the durable store refused
=============================  ======  ===================================================

``<field>`` is one of ``created_at``, ``updated_at``, ``last_activity_at``. Members of
one score are ordered by their bytes, which for session ids (ASCII) is Python's string
order: a sorted set gives exactly the (time, id) order of a listing.
"""

from __future__ import annotations

import re

from chatkeep.core.query import SortField

FIELDS = tuple(SortField)
_GLOB = re.compile(r"([*?\[\]\\])")


class Keys:
    """The key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.expiry = f"{prefix}:expiry"
        self.outbox = f"{prefix}:outbox"
        self.waiting = f"{prefix}:outbox:waiting"
        self.dead = f"{prefix}:outbox:dead"
        self._by = {field: f"{prefix}:by:{field.value}" for field in FIELDS}
        self._owned = {field: f"{prefix}:o:{field.value}:" for field in FIELDS}

    def session(self, session_id: str) -> str:
        return f"{self.prefix}:s:{session_id}"

    def messages(self, session_id: str) -> str:
        return f"{self.prefix}:m:{session_id}"

    def ids(self, session_id: str) -> str:
        return f"{self.prefix}:i:{session_id}"

    def lock(self, session_id: str) -> str:
        return f"{self.prefix}:w:{session_id}"

    def data(self, session_id: str) -> tuple[str, str, str]:
        """The keys that hold the session itself (record, messages, id index)."""
        return self.session(session_id), self.messages(session_id), self.ids(session_id)

    def by(self, field: SortField) -> str:
        return self._by[field]

    def owned(self, field: SortField, owner: str) -> str:
        return self._owned[field] + owner

    def listing(self, field: SortField, owner: str | None) -> str:
        """The sorted set to walk for a listing by ``field``, of one owner or of all."""
        return self.by(field) if owner is None else self.owned(field, owner)

    def pattern(self, kind: str = "") -> str:
        """A SCAN pattern for the keys of ``kind`` (``"o"``, ``"s"``...) or of all kinds."""
        base = _GLOB.sub(r"\\\1", self.prefix)
        return f"{base}:{kind}:*" if kind else f"{base}:*"
