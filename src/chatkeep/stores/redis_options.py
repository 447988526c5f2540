"""Reading numbers from the query options of a ``redis://`` URL (no driver needed)."""

from __future__ import annotations

from collections.abc import Mapping

from chatkeep.errors import ConfigurationError


def number_option(
    options: Mapping[str, str], name: str, default: float, kind: type[int] | type[float], what: str
) -> float:
    text = options.get(name)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ConfigurationError(name, f"{text!r} is not {what}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(name, f"{text!r} is not {what}")
    return value
