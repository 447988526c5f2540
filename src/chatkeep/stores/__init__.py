"""Session stores: one protocol, many backends."""

from chatkeep.stores.base import (
    Appended,
    HealthReport,
    ImportReport,
    MergeStrategy,
    OptimizeReport,
    Store,
    StoreStats,
)
from chatkeep.stores.registry import open_store

__all__ = [
    "Appended",
    "HealthReport",
    "ImportReport",
    "MergeStrategy",
    "OptimizeReport",
    "Store",
    "StoreStats",
    "open_store",
]
