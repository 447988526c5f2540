"""The chatkeep server: a REST API over the session manager."""

from chatkeep.server.app import build_manager, create_app, store_urls

__all__ = ["build_manager", "create_app", "store_urls"]
