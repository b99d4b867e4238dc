"""The Redis side of the shared store: the client (or a cluster's), the keys under one prefix (one hash tag on a
cluster), Redis's errors as ours, and the memory policy: a Redis that evicts keys under memory pressure silently
drops calls it acknowledged, so a store refuses to start on one (unless allowed) and to write while it does.

Keys (``PREFIX`` defaults to ``comms-webhook``)::

    PREFIX:call:{id}            the call's own record (JSON); ended calls expire after RETENTION_SECONDS, and
                                with them its collections:
    PREFIX:call:{id}:history    list of its transitions, the latest HISTORY_LIMIT
    PREFIX:call:{id}:roster     hash position -> participant
    PREFIX:call:{id}:ops        hash id -> operation;  :ops-order  list of their ids, oldest first
    PREFIX:call:{id}:tones      list of tones;  :tone-ids  set of the sequence ids heard
    PREFIX:calls                sorted set of every call id, by last update (ms)
    PREFIX:state:{state}        sorted set of the call ids in that state, by last update
    PREFIX:active               sorted set of the calls not ended, by last update
    PREFIX:app:{app id}         sorted set of the call ids of one bot, by last update
    PREFIX:stale                sorted set of the active calls marked stale
    PREFIX:keepalive            sorted set of the calls that need keepAlive, by the last one (ms)
    PREFIX:outbox               hash id -> event;  PREFIX:outbox:owner  hash id -> owner
    PREFIX:outbox:lease         sorted set id -> lease end (epoch seconds)
    PREFIX:failures             hash id -> failure (JSON); PREFIX:failures:pending / :all  sorted sets of ids
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import RedisClusterException, RedisError

from ..errors import ConfigError, StoreUnavailable
from ..settings import masked_url
from .base import CallStore

MAX_ATTEMPTS = 100  # optimistic retries of one write under contention on the same key (WATCH)
_POLICY_CHECK_SECONDS = 30.0  # how stale the knowledge of Redis's memory policy may be on the write path

logger = logging.getLogger("webhook.store")


def _evicts(policy: str) -> bool:
    """Whether the policy may evict keys without a time to live: active calls, the outbox, failures.

    ``volatile-*`` policies evict only keys with an expiry, which here are ended calls past their use; they are
    allowed, with a warning.
    """
    return policy.startswith("allkeys-")


def _eviction_message(url: str, policy: str) -> str:
    if not _evicts(policy):
        return f"Redis at {url} has maxmemory-policy {policy}: under memory pressure it evicts ended calls early"
    return (
        f"Redis at {url} has maxmemory-policy {policy}: under memory pressure it deletes keys, and calls this "
        "receiver acknowledged to Graph would silently disappear. Set maxmemory-policy noeviction (Redis then "
        "refuses writes when full, which this receiver answers with 503, and Graph retries), or set "
        "WEBHOOK_REDIS_ALLOW_EVICTION=1 to accept the loss"
    )


class RedisClient(CallStore):
    """A store's connection to Redis (the store itself is :class:`~webhook.store.redis.RedisStore`)."""

    def __init__(self, url: str, *, timeout: float, prefix: str, allow_eviction: bool, cluster: bool) -> None:
        self.url = masked_url(url)
        self.cluster = cluster
        self.prefix = prefix
        self.allow_eviction = allow_eviction
        self._policy_checked_at = -math.inf
        self._warned_policy: str | None = None
        # Short timeouts: a stuck Redis must answer 503 well before gunicorn or Graph give up on the request.
        # Typed as Any: redis-py's own annotations cannot express decode_responses=True.
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": timeout,
            "socket_connect_timeout": min(timeout, 1.0),
            "health_check_interval": 30,
        }
        if cluster:
            from redis.cluster import RedisCluster

            self.client: Any = RedisCluster.from_url(url, **options)
        else:
            self.client = redis.Redis.from_url(url, **options)

    def key(self, *parts: str) -> str:
        # On a cluster every key of the store shares one hash tag, so that each transaction (a call, its
        # collections, the indexes and the outbox rows it writes) stays in one slot, as MULTI requires there.
        return ":".join((f"{{{self.prefix}}}" if self.cluster else self.prefix, *parts))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (RedisError, RedisClusterException, OSError) as exc:
            unreachable = isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError))
            reason = "unreachable" if unreachable else "unavailable"
            raise StoreUnavailable(f"the Redis store {self.url} is unavailable: {exc}", reason=reason) from exc

    # The memory policy: a Redis that evicts keys under memory pressure silently drops calls it acknowledged.

    def open(self) -> None:
        policy = self._memory_policy()
        if _evicts(policy) and not self.allow_eviction:
            raise ConfigError(_eviction_message(self.url, policy))

    def _memory_policy(self) -> str:
        """Redis's ``maxmemory-policy``, read from INFO (managed services often disable CONFIG)."""
        with self._errors():
            policy = str(self.client.info("memory").get("maxmemory_policy", "noeviction"))
        self._policy_checked_at = time.monotonic()
        if (_evicts(policy) or policy.startswith("volatile-")) and self._warned_policy != policy:
            self._warned_policy = policy
            logger.warning(
                "%s%s",
                _eviction_message(self.url, policy),
                "; WEBHOOK_REDIS_ALLOW_EVICTION=1 accepts that risk" if self.allow_eviction else "",
            )
        return policy

    def _check_memory_policy(self, *, every: float = _POLICY_CHECK_SECONDS) -> None:
        """Refuse to store while Redis may evict keys (unless allowed); asks Redis at most once per ``every``."""
        if self.allow_eviction or time.monotonic() - self._policy_checked_at < every:
            return
        policy = self._memory_policy()
        if _evicts(policy):
            self._policy_checked_at = -math.inf  # and ask again next time, so the fix is seen at once
            raise StoreUnavailable(_eviction_message(self.url, policy), reason="evicting")

    def ping(self) -> None:
        with self._errors():
            self.client.ping()
        self._check_memory_policy(every=0)
