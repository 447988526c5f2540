"""Identifiers: ULIDs for new things, and the rule a caller-chosen id must follow."""

from __future__ import annotations

import re
import uuid

from ulid import ULID

from chatkeep.errors import InvalidInputError

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def new_id() -> str:
    """A new ULID: unique, and sortable by creation time."""
    return str(ULID())


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
