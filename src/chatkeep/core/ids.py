"""Identifiers: ULIDs for new things, and the rule a caller-chosen id must follow."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

from chatkeep.errors import InvalidInputError

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""The ULID alphabet (Crockford's base 32: no I, L, O or U)."""
_PAIRS = tuple(a + b for a in CROCKFORD for b in CROCKFORD)
"""Every 10-bit value as its two characters."""
_TIME_SHIFTS = (40, 30, 20, 10, 0)
"""The 50 bits of a time (48, and 2 always 0) in 10 characters."""
_RANDOM_SHIFTS = (70, 60, 50, 40, 30, 20, 10, 0)
"""The 80 random bits in 16 characters."""
_lock = threading.Lock()
_last = 0
_time_text = (-1, "")
"""The last millisecond an id was made in, and its 10 characters (shared by its ids)."""


def new_id() -> str:
    """A new ULID (https://github.com/ulid/spec): 48 bits of Unix time in milliseconds
    and 80 random bits, as 26 characters that sort as the times do.

    Ids made in the same millisecond (or after the clock went back) take the last one
    plus 1, as the spec's monotonic generator does, so that one process's ids always
    sort in the order they were made. Written here rather than taken from a ULID
    package: it runs on every message appended, and this takes under half the time.
    """
    global _last, _time_text
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    with _lock:
        if value <= _last:
            value = _last + 1
        _last = value
    pairs = _PAIRS
    millis = value >> 80
    known = _time_text
    if known[0] != millis:
        known = _time_text = (millis, "".join([pairs[millis >> s & 1023] for s in _TIME_SHIFTS]))
    return known[1] + "".join([pairs[value >> shift & 1023] for shift in _RANDOM_SHIFTS])


def check_id(value: object, field: str) -> str:
    """Return ``value`` if it is an acceptable session or message id."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise InvalidInputError(
            field,
            f"{value!r} is not a valid id (1-128 characters: letters, digits and ._:-, "
            "starting with a letter or digit)",
        )
    return value


def check_device_id(value: object, field: str = "device_id") -> str:
    """Return the canonical form of a device id, which must be a UUID."""
    if not isinstance(value, str):
        raise InvalidInputError(field, f"{value!r} is not a UUID")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInputError(field, f"{value!r} is not a UUID") from None
