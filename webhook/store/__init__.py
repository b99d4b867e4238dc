"""Call stores: where each call's state, history, participants and operations are kept."""

from __future__ import annotations

from ..errors import ConfigError
from .base import CallStore
from .sqlite import SQLiteStore

__all__ = ["CallStore", "SQLiteStore", "open_store"]


def open_store(url: str, *, timeout: float = 5.0) -> CallStore:
    """Open the store a ``STORE_URL`` names: ``sqlite:///relative/path`` or ``sqlite:////absolute/path``."""
    if url.startswith("sqlite:///"):
        return SQLiteStore.from_url(url, timeout=timeout)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ConfigError(
        f"WEBHOOK_STORE_URL: unsupported store {scheme!r}; use sqlite:///PATH (relative) or sqlite:////PATH (absolute)"
    )
