"""Call stores: where each call's state, history, participants, outbox and handler failures are kept."""

from __future__ import annotations

import logging

from ..errors import ConfigError, StoreUnavailable
from ..settings import default
from .base import NO_LEASE, CallStore, Lease
from .sqlite import SQLiteStore

__all__ = ["NO_LEASE", "CallStore", "Lease", "SQLiteStore", "open_store"]

logger = logging.getLogger("webhook.store")


def open_store(
    url: str,
    *,
    timeout: float = default("STORE_TIMEOUT_SECONDS"),
    retention_seconds: float = default("RETENTION_SECONDS"),
    prefix: str = default("REDIS_PREFIX"),
    redis_allow_eviction: bool = default("REDIS_ALLOW_EVICTION"),
    sqlite_synchronous: str = default("SQLITE_SYNCHRONOUS"),
    history_limit: int = default("HISTORY_LIMIT"),
    redis_cluster: bool = default("REDIS_CLUSTER"),
) -> CallStore:
    """Open the store a ``STORE_URL`` names.

    ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (one machine), ``redis://[:password@]host:port/db``
    or ``rediss://...`` (several instances; ``prefix`` starts every key, ``retention_seconds`` is how long ended
    calls are kept, ``redis_allow_eviction`` accepts a Redis that may evict keys); ``history_limit`` is how many
    transitions are kept per call, the latest; ``redis_cluster`` talks to a Redis Cluster).

    The store is opened and checked at once: a setting no retry fixes raises :class:`ConfigError`; a store that
    cannot be used yet (locked, disk full, unreachable) is logged and returned, and every use tries again.
    """
    store: CallStore | None = None
    if url.startswith("sqlite:///"):
        store = SQLiteStore.from_url(url, timeout=timeout, synchronous=sqlite_synchronous, history_limit=history_limit)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore  # redis-py is imported only by those who use it

        store = RedisStore(
            url,
            timeout=timeout,
            retention_seconds=retention_seconds,
            prefix=prefix,
            allow_eviction=redis_allow_eviction,
            history_limit=history_limit,
            cluster=redis_cluster,
        )
    if store is not None:
        try:
            store.open()
        except StoreUnavailable as exc:
            # A process must start whatever the store's state (a gunicorn worker that cannot boot takes the
            # whole server down): it answers 503 until the store can be used, retrying on every use.
            logger.error("the store cannot be used yet, answering 503 until it can: %s", exc.message)
        return store
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ConfigError(
        f"WEBHOOK_STORE_URL: unsupported store {scheme!r}; use sqlite:///PATH (relative), sqlite:////PATH "
        "(absolute) or redis://HOST:PORT/DB"
    )
