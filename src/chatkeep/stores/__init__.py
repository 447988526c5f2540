"""Session stores: one protocol, many backends."""

from chatkeep.stores.base import (
    HealthReport,
    ImportReport,
    MergeStrategy,
    OptimizeReport,
    Store,
    StoreStats,
)
from chatkeep.stores.registry import open_store

__all__ = [
    "HealthReport",
    "ImportReport",
    "MergeStrategy",
    "OptimizeReport",
    "Store",
    "StoreStats",
    "open_store",
]
