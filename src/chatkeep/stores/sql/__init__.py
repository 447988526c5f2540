"""SQL files shipped with the SQL backends, read with :func:`load`."""

from __future__ import annotations

from importlib.resources import files


def load(name: str) -> str:
    """The text of the SQL file ``name`` in this package."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8")
