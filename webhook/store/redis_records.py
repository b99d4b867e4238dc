"""What the Redis store keeps besides a call's transitions: reading calls back (and their collections), the
outbox's rows (claimed again when their owner died or their lease expired) and the failures of handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from redis.exceptions import WatchError

from .. import codec
from ..errors import StoreError
from ..events import Event
from ..failures import Failure
from ..model import Call
from .redis_client import MAX_ATTEMPTS, RedisClient
from .rows import json_rows

# The keys of a call document that an earlier release kept inside it, now keys of their own.
_COLLECTION_KEYS = ("history", "participants", "operations", "tones")

# Lease an outbox row to a new owner only if nobody claimed it since we looked (compare and set).
_CLAIM = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return false end
local event = redis.call('HGET', KEYS[3], ARGV[1])
if not event then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return event
"""


class RedisRecords(RedisClient):
    """Reads, the outbox and the failures of :class:`~webhook.store.redis.RedisStore`."""

    def __init__(self, url: str, *, timeout: float, prefix: str, allow_eviction: bool, cluster: bool) -> None:
        super().__init__(url, timeout=timeout, prefix=prefix, allow_eviction=allow_eviction, cluster=cluster)
        self._claim = self.client.register_script(_CLAIM)

    def count_calls(self, what: str) -> int:
        with self._errors():
            return int(self.client.zcard(self.key("stale" if what == "stale" else "active")))

    def quiet_calls(self, seen_before: float, limit: int = 100) -> list[str]:
        with self._errors():
            ids: list[str] = self.client.zrangebyscore(self.key("active"), "-inf", seen_before * 1000, 0, limit * 2)
            if not ids:
                return []
            marked = self.client.zmscore(self.key("stale"), ids)
        return [call_id for call_id, score in zip(ids, marked, strict=True) if score is None][:limit]

    def keepalives_due(self, due_before: float, limit: int = 100) -> list[str]:
        with self._errors():
            due: list[str] = self.client.zrangebyscore(self.key("keepalive"), "-inf", f"({due_before * 1000}", 0, limit)
        return due

    def get(self, call_id: str) -> Call | None:
        with self._errors():
            raw = self.client.get(self.key("call", call_id))
        return self._stored(raw) if raw else None

    def _stored(self, raw: str) -> Call:
        doc = codec.loads(raw)
        if any(key in doc for key in _COLLECTION_KEYS):
            return Call.from_dict(doc)  # written by an earlier release: whole, until its next notification
        return self.stored(Call.from_dict(doc))

    def read_collection(self, call_id: str, name: str, history_upto: int | None = None) -> Any:
        with self._errors():
            if name == "history":
                with self.client.pipeline(transaction=True) as pipe:
                    pipe.get(self.key("call", call_id))
                    pipe.lrange(self.key("call", call_id, "history"), 0, -1)
                    raw, steps = pipe.execute()
                total = int(codec.loads(raw).get("historyTotal") or 0) if raw else len(steps)
                first = total - len(steps)  # the sequence number of the oldest step kept
                upto = len(steps) if history_upto is None else max(0, history_upto - first)
                return [codec.loads(step) for step in steps[:upto]]
            if name == "participants":
                entries = self.client.hgetall(self.key("call", call_id, "roster"))
                return json_rows(entries[position] for position in sorted(entries, key=int))
            if name == "operations":
                order = self.client.lrange(self.key("call", call_id, "ops-order"), 0, -1)
                docs = self.client.hmget(self.key("call", call_id, "ops"), order) if order else []
                return {op_id: codec.loads(doc) for op_id, doc in zip(order, docs, strict=True) if doc is not None}
            if name == "tones":
                return [codec.loads(tone) for tone in self.client.lrange(self.key("call", call_id, "tones"), 0, -1)]
        raise ValueError(f"a call has no collection {name!r}")

    def list_calls(
        self, state: str | None = None, limit: int = 100, *, active: bool = False, app: str | None = None
    ) -> list[Call]:
        if app is not None:
            index = self.key("app", app)
        elif state is not None:
            index = self.key("state", state)
        else:
            index = self.key("active" if active else "calls")
        with self._errors():
            ids: list[str] = self.client.zrevrange(index, 0, limit * 2 + 10)
            docs = self.client.mget([self.key("call", call_id) for call_id in ids]) if ids else []
            expired = [call_id for call_id, doc in zip(ids, docs, strict=True) if doc is None]
            if expired:
                self.client.zrem(index, *expired)
        calls = [self._stored(doc) for doc in docs if doc is not None]
        if state is not None:
            calls = [call for call in calls if call.state == state]
        if app is not None:
            calls = [call for call in calls if call.app_id == app]
        if active:
            calls = [call for call in calls if call.state != "terminated"]
        return calls[:limit]

    # Outbox

    def _remove_events(self, event_ids: list[int]) -> None:
        with self._errors(), self.client.pipeline(transaction=True) as pipe:
            self._delete_events(pipe, event_ids)
            pipe.execute()

    def _delete_events(self, pipe: Any, event_ids: list[int]) -> None:
        keys = [str(event_id) for event_id in event_ids]
        pipe.hdel(self.key("outbox"), *keys)
        pipe.hdel(self.key("outbox", "owner"), *keys)
        pipe.zrem(self.key("outbox", "lease"), *keys)

    def claim_orphans(
        self, owner: str, now: float, lease_until: float, is_dead: Callable[[str], bool], limit: int = 100
    ) -> list[Event]:
        with self._errors():
            ids: list[str] = self.client.zrange(self.key("outbox", "lease"), 0, -1)
            if not ids:
                return []
            owners = self.client.hmget(self.key("outbox", "owner"), ids)
            leases = self.client.zmscore(self.key("outbox", "lease"), ids)
            claimed: list[Event] = []
            for event_id, row_owner, lease in zip(ids, owners, leases, strict=True):
                if len(claimed) >= limit or row_owner is None:
                    continue
                if row_owner == owner or not ((lease or 0) < now or is_dead(row_owner)):
                    continue
                keys = [self.key("outbox", "owner"), self.key("outbox", "lease"), self.key("outbox")]
                text = self._claim(keys=keys, args=[event_id, row_owner, owner, lease_until])
                if text:
                    claimed.append(Event.decode(text, int(event_id), collections=self.read_collection))
        return claimed

    def _count_events(self) -> int:
        with self._errors():
            return int(self.client.hlen(self.key("outbox")))

    # Failures

    def record_failure(self, call_id: str | None, handler: str, signal: str, event: str, error: str, now: str) -> int:
        with self._errors():
            failure_id = int(self.client.incr(self.key("failures", "seq")))
            failure = Failure(failure_id, call_id, handler, signal, event, error, 1, "pending", now, now)
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(self.key("failures"), str(failure_id), failure.to_json())
                pipe.zadd(self.key("failures", "pending"), {str(failure_id): failure_id})
                pipe.zadd(self.key("failures", "all"), {str(failure_id): failure_id})
                pipe.execute()
        return failure_id

    def failures(self, *, include_resolved: bool = False, limit: int = 100) -> list[Failure]:
        index = self.key("failures", "all" if include_resolved else "pending")
        with self._errors():
            ids = self.client.zrange(index, 0, limit - 1)
            docs = self.client.hmget(self.key("failures"), ids) if ids else []
        return [Failure.from_json(doc) for doc in docs if doc is not None]

    def failure(self, failure_id: int) -> Failure | None:
        with self._errors():
            doc = self.client.hget(self.key("failures"), str(failure_id))
        return Failure.from_json(doc) if doc else None

    def update_failure(self, failure_id: int, *, resolved: bool, error: str | None, now: str) -> None:
        key = self.key("failures")
        with self._errors():
            for _ in range(MAX_ATTEMPTS):
                with self.client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(key)
                        doc = pipe.hget(key, str(failure_id))
                        if doc is None:
                            return
                        failure = Failure.from_json(doc)
                        failure = replace(
                            failure,
                            attempts=failure.attempts + 1,
                            status="resolved" if resolved else "pending",
                            error=error if error is not None else failure.error,
                            last_at=now,
                        )
                        pipe.multi()
                        pipe.hset(key, str(failure_id), failure.to_json())
                        if resolved:
                            pipe.zrem(self.key("failures", "pending"), str(failure_id))
                        pipe.execute()
                        return
                    except WatchError:
                        continue
        raise StoreError(f"failure {failure_id} kept changing while it was updated")
