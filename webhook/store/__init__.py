"""Call stores: where each call's state, history, participants, outbox and handler failures are kept."""

from __future__ import annotations

from ..errors import ConfigError
from .base import CallStore
from .sqlite import SQLiteStore

__all__ = ["CallStore", "SQLiteStore", "open_store"]

WEEK = 7 * 24 * 3600


def open_store(
    url: str,
    *,
    timeout: float = 5.0,
    retention_seconds: float = WEEK,
    prefix: str = "comms-webhook",
    sqlite_synchronous: str = "full",
) -> CallStore:
    """Open the store a ``STORE_URL`` names.

    ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (one machine), ``redis://[:password@]host:port/db``
    or ``rediss://...`` (several instances; ``prefix`` starts every key, ``retention_seconds`` is how long ended
    calls are kept).
    """
    if url.startswith("sqlite:///"):
        return SQLiteStore.from_url(url, timeout=timeout, synchronous=sqlite_synchronous)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore  # redis-py is imported only by those who use it

        return RedisStore(url, timeout=timeout, retention_seconds=retention_seconds, prefix=prefix)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ConfigError(
        f"WEBHOOK_STORE_URL: unsupported store {scheme!r}; use sqlite:///PATH (relative), sqlite:////PATH "
        "(absolute) or redis://HOST:PORT/DB"
    )
