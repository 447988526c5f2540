"""Read-only JSON containers, so that stored records can be shared without copying.

A :class:`FrozenDict` is a ``dict`` and a :class:`FrozenList` a ``list`` (they compare
equal to plain ones and serialise as JSON), but every mutating method raises
``TypeError``. Copy one with ``dict(...)`` / ``list(...)`` to change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from chatkeep.core.models import JSON


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    kind = "dict" if isinstance(self, dict) else "list"
    raise TypeError(f"stored values are read-only; change a copy: {kind}(value)")


class FrozenDict(dict[str, "JSON"]):
    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __copy__(self) -> dict[str, JSON]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> JSON:
        return thaw(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


class FrozenList(list["JSON"]):
    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = remove = pop = clear = sort = reverse = _refuse

    def __copy__(self) -> list[JSON]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> JSON:
        return thaw(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))


EMPTY = FrozenDict()
"""The one empty read-only object: most messages have no metadata."""


def freeze(value: JSON) -> JSON:
    """``value`` with every object and array replaced by a read-only one."""
    if isinstance(value, dict):
        if not value:
            return EMPTY
        return (
            value
            if type(value) is FrozenDict
            else FrozenDict({key: freeze(item) for key, item in value.items()})
        )
    if isinstance(value, list):
        return value if type(value) is FrozenList else FrozenList(freeze(item) for item in value)
    return value


def freeze_object(value: Mapping[str, JSON]) -> dict[str, JSON]:
    """A read-only copy of a JSON object (itself, if it is one already)."""
    if type(value) is FrozenDict:
        return value
    return EMPTY if not value else FrozenDict({k: freeze(v) for k, v in value.items()})


def thaw(value: JSON) -> JSON:
    """A plain, mutable deep copy of ``value``."""
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    return value
