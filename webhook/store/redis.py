"""The shared store: Redis, for several receiver instances behind a load balancer.

The same contract as SQLite, with the same brain: :func:`~webhook.state.decide` runs in Python between
``WATCH`` on the call's key and ``MULTI``/``EXEC``. If another process changes the call in between, ``EXEC``
fails and the notification is decided again on what that process wrote, so each transition is applied, and its
events returned, exactly once across every process on every instance. The call, its indexes and its outbox rows
are written by one ``EXEC``: a call is never half-written.

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
    PREFIX:stale                sorted set of the active calls marked stale
    PREFIX:keepalive            sorted set of the calls that need keepAlive, by the last one (ms)
    PREFIX:outbox               hash id -> event;  PREFIX:outbox:owner  hash id -> owner
    PREFIX:outbox:lease         sorted set id -> lease end (epoch seconds)
    PREFIX:failures             hash id -> failure (JSON); PREFIX:failures:pending / :all  sorted sets of ids

Every Redis error (unreachable, timeout, loading...) becomes :class:`~webhook.errors.StoreUnavailable` (503):
Graph retries, and the client reconnects by itself when Redis is back.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import redis
from redis.exceptions import RedisClusterException, RedisError, WatchError

from .. import codec
from ..clock import epoch
from ..errors import ConfigError, StoreError, StoreUnavailable
from ..events import Decision, Event
from ..failures import Failure
from ..model import Call
from ..settings import default, masked_url
from ..state import Needs
from ..timers import needs_keepalive
from .base import CallStore, Choose, Lease
from .rows import HISTORY_LIMIT, KEPT_PER_CALL, Rows, as_stored, json_rows, partial_call, rows_of

_MAX_ATTEMPTS = 100  # optimistic retries of one notification under contention on the same call
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


# The keys of a call document that an earlier release kept inside it, now keys of their own.
_COLLECTION_KEYS = ("history", "participants", "operations", "tones")

# Drop the oldest COUNT operations of a call: their ids from the head of the order list, then their records.
_DROP_OLDEST = """
local ids = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
redis.call('LTRIM', KEYS[1], tonumber(ARGV[1]), -1)
if #ids > 0 then redis.call('HDEL', KEYS[2], unpack(ids)) end
return #ids
"""

# Lease an outbox row to a new owner only if nobody claimed it since we looked (compare and set).
_CLAIM = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return false end
local event = redis.call('HGET', KEYS[3], ARGV[1])
if not event then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return event
"""


# Add one event to the outbox, leased: its id from the sequence, taken inside the caller's MULTI.
_ADD_EVENT = """
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('HSET', KEYS[3], id, ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], id)
return id
"""


@dataclass
class _Found:
    """What one read of a call found of its collections, besides its record (see ``RedisStore._read``)."""

    operations_kept: int = 0
    roster: dict[str, str] = field(default_factory=dict)
    operation: str | None = None
    tone_heard: bool = False


def _epoch_ms(timestamp: str) -> float:
    """An index score from a call's ISO time; one that cannot be read (a document edited by hand) is indexed as
    now, and said so, so that the call is still listed and swept."""
    seconds = epoch(timestamp)
    if seconds is None:
        logger.warning("unreadable time %r in a call's record: indexed as now", timestamp)
        seconds = time.time()
    return seconds * 1000


class RedisStore(CallStore):
    """A :class:`CallStore` on Redis (``redis://`` or ``rediss://``, password and db in the URL); on a Redis
    Cluster with ``cluster=True`` (any node's URL: the client finds the others)."""

    engine = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = default("STORE_TIMEOUT_SECONDS"),
        retention_seconds: float = default("RETENTION_SECONDS"),
        prefix: str = default("REDIS_PREFIX"),
        allow_eviction: bool = default("REDIS_ALLOW_EVICTION"),
        history_limit: int = HISTORY_LIMIT,
        kept_per_call: int = KEPT_PER_CALL,
        cluster: bool = default("REDIS_CLUSTER"),
    ) -> None:
        self.url = masked_url(url)
        self.cluster = cluster
        self.history_limit, self.kept_per_call = history_limit, kept_per_call
        self.retention_seconds = retention_seconds
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
        self._claim = self.client.register_script(_CLAIM)

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

    # Calls

    def _check_writable(self) -> None:
        self._check_memory_policy()  # a notification acknowledged into a Redis that evicts may vanish

    def _decide_and_commit(self, call_id: str, now: str, choose: Choose, lease: Lease, needs: Needs) -> Decision | None:
        """WATCH the call, let ``choose`` decide on what is stored, and commit in one MULTI/EXEC; decide again
        if another process changed the call meanwhile. None when ``choose`` declines; after too many races,
        :class:`~webhook.errors.StoreUnavailable` (busy).

        Only the call's own key is watched: every commit rewrites it, so a change to any of its collections
        by another process also fails this EXEC.
        """
        call_key = self.key("call", call_id)
        delivered, carried = self._completions().take(), False
        try:
            with self._errors():
                for _ in range(_MAX_ATTEMPTS):
                    with self.client.pipeline(transaction=True) as pipe:
                        try:
                            pipe.watch(call_key)
                            raw, found = self._read(call_id, needs)  # after WATCH: a change since fails EXEC
                            loaded, legacy = self._load(raw, found, needs) if raw else (None, None)
                            decision = choose(loaded)
                            if decision is None:
                                return None
                            committed = self._commit(pipe, decision, loaded, legacy, needs, lease, delivered, found)
                            carried = True
                            return as_stored(self, committed, needs)
                        except WatchError:
                            continue
        finally:
            if not carried:  # no commit took them: the next one, or the timer, will
                self._completions().add(delivered, first=True)
        # Not None: that says "nothing to write", and a caller must not take this for it.
        raise StoreUnavailable(
            f"call {call_id} changed {_MAX_ATTEMPTS} times while it was being updated; retry", reason="busy"
        )

    def _read(self, call_id: str, needs: Needs) -> tuple[str | None, _Found]:
        """The call's record and what ``needs`` names of its collections, in one round trip (on a connection of
        their own: the watching one sends each command alone)."""
        reads = self.client.pipeline(transaction=False)
        reads.get(self.key("call", call_id))
        reads.llen(self.key("call", call_id, "ops-order"))
        if needs.roster:
            reads.hgetall(self.key("call", call_id, "roster"))
        if needs.operation is not None:
            reads.hget(self.key("call", call_id, "ops"), needs.operation)
        if needs.tone_sequence is not None:
            reads.sismember(self.key("call", call_id, "tone-ids"), str(needs.tone_sequence))
        raw, kept, *rest = reads.execute()
        found = _Found(operations_kept=int(kept))
        if needs.roster:
            found.roster = rest.pop(0)
        if needs.operation is not None:
            found.operation = rest.pop(0)
        if needs.tone_sequence is not None:
            found.tone_heard = bool(rest.pop(0))
        return raw, found

    def _load(self, raw: str, found: _Found, needs: Needs) -> tuple[Call, Call | None]:
        """The call ``decide`` is given, and, for a document written by a release that kept the collections
        inside it, that whole call (its collections are moved to their own keys by this commit)."""
        doc = codec.loads(raw)
        if any(key in doc for key in _COLLECTION_KEYS):
            legacy = Call.from_dict(doc)
            tones = [t for t in legacy.tones if t.get("sequenceId") == needs.tone_sequence]
            operation = legacy.operations.get(needs.operation) if needs.operation is not None else None
            core = Call.from_dict({key: value for key, value in doc.items() if key not in _COLLECTION_KEYS})
            core.history_total = legacy.history_total
            return partial_call(core, needs, list(legacy.participants), operation, tones), legacy
        roster = json_rows(found.roster[position] for position in sorted(found.roster, key=int)) if needs.roster else []
        operation = codec.loads(found.operation) if found.operation else None
        # Enough for decide to know the tone was heard.
        heard = [{"sequenceId": needs.tone_sequence}] if found.tone_heard else []
        return partial_call(Call.from_dict(doc), needs, roster, operation, heard), None

    def _commit(
        self,
        pipe: Any,
        decision: Decision,
        loaded: Call | None,
        legacy: Call | None,
        needs: Needs,
        lease: Lease,
        delivered: list[int],
        found: _Found,
    ) -> Decision:
        """Write a decision's call, the rows it changed and its outbox rows in one MULTI/EXEC on a watching
        pipeline, and delete the outbox rows of ``delivered`` events; number its events (each outbox row takes
        its id inside the transaction, from a script, so that no round trip is spent on ids before it).

        Raises ``WatchError`` when the call changed since it was read: the caller decides again.
        """
        wanted = [event for event in decision.events if lease.needs_delivery(event)]
        call = decision.call
        operations_kept = found.operations_kept
        pipe.multi()
        if call is not None:
            self._write_call(pipe, call, loaded)
            if legacy is not None:  # written whole by the previous release: its collections move to their keys
                everything = rows_of(Call(id=legacy.id), legacy, Needs(roster=True))
                self._write_rows(pipe, legacy, everything, None, 0)
                operations_kept = len(legacy.operations)
            self._write_rows(pipe, call, rows_of(loaded or Call(id=call.id), call, needs), loaded, operations_kept)
        if delivered:
            self._delete_events(pipe, delivered)
        outbox = (
            self.key("outbox", "seq"),
            self.key("outbox"),
            self.key("outbox", "owner"),
            self.key("outbox", "lease"),
        )
        for event in wanted:  # last: their ids end the list of replies
            pipe.execute_command("EVAL", _ADD_EVENT, len(outbox), *outbox, event.encode(), lease.owner, lease.until)
        replies = pipe.execute()
        ids = [int(reply) for reply in replies[len(replies) - len(wanted) :]]
        numbers = iter(ids)
        events = tuple(
            replace(event, id=next(numbers)) if any(event is w for w in wanted) else event for event in decision.events
        )
        return replace(decision, events=events)

    def _write_call(self, pipe: Any, call: Call, previous: Call | None) -> None:
        call_id = call.id
        score = _epoch_ms(call.seen_at)  # the indexes are ordered by the last notification
        doc = codec.dumps(call.core_dict())
        if call.state == "terminated":
            pipe.set(self.key("call", call_id), doc, ex=int(self.retention_seconds))
            pipe.zrem(self.key("active"), call_id)
            # Forget index entries of calls whose documents have expired.
            horizon = score - self.retention_seconds * 1000
            pipe.zremrangebyscore(self.key("calls"), "-inf", horizon)
            pipe.zremrangebyscore(self.key("state", "terminated"), "-inf", horizon)
        else:
            pipe.set(self.key("call", call_id), doc)  # no expiry while the call is active
            pipe.zadd(self.key("active"), {call_id: score})
        if previous is not None and previous.state is not None and previous.state != call.state:
            pipe.zrem(self.key("state", previous.state), call_id)
        if call.state is not None:
            pipe.zadd(self.key("state", call.state), {call_id: score})
        pipe.zadd(self.key("calls"), {call_id: score})
        if call.stale_since is not None and call.state != "terminated":
            pipe.zadd(self.key("stale"), {call_id: score})
        else:
            pipe.zrem(self.key("stale"), call_id)
        if needs_keepalive(call) and call.keepalive_at is not None:
            pipe.zadd(self.key("keepalive"), {call_id: _epoch_ms(call.keepalive_at)})
        else:
            pipe.zrem(self.key("keepalive"), call_id)

    def _write_rows(self, pipe: Any, call: Call, rows: Rows, loaded: Call | None, operations_kept: int) -> None:
        key = functools.partial(self.key, "call", call.id)
        if rows.history:
            pipe.rpush(key("history"), *(codec.dumps(step) for _, step in rows.history))
            pipe.ltrim(key("history"), -self.history_limit, -1)
        if rows.roster is not None:
            self._write_roster(pipe, key("roster"), rows, len(loaded.participants) if loaded is not None else 0)
        if rows.operations:
            self._write_operations(pipe, key("ops"), key("ops-order"), rows, loaded, operations_kept)
        if rows.tones:
            pipe.rpush(key("tones"), *(codec.dumps(tone) for tone in rows.tones))
            pipe.ltrim(key("tones"), -self.kept_per_call, -1)
            heard = [str(tone["sequenceId"]) for tone in rows.tones if tone.get("sequenceId") is not None]
            if heard:
                pipe.sadd(key("tone-ids"), *heard)
        if call.state == "terminated":
            for name in ("history", "roster", "ops", "ops-order", "tones", "tone-ids"):
                pipe.expire(key(name), int(self.retention_seconds))

    @staticmethod
    def _write_roster(pipe: Any, roster: str, rows: Rows, before: int) -> None:
        """The positions that changed, and the ones beyond the new length removed."""
        assert rows.roster is not None
        if rows.roster:
            pipe.hset(roster, mapping={str(position): codec.dumps(entry) for position, entry in rows.roster})
        if before > rows.roster_length:
            pipe.hdel(roster, *(str(position) for position in range(rows.roster_length, before)))

    def _write_operations(
        self, pipe: Any, ops: str, order: str, rows: Rows, loaded: Call | None, operations_kept: int
    ) -> None:
        """The operations that changed; the new ones appended to the order, the oldest beyond the limit gone."""
        pipe.hset(ops, mapping={op_id: codec.dumps(op) for op_id, op in rows.operations})
        new_operations = [op_id for op_id, _ in rows.operations if loaded is None or op_id not in loaded.operations]
        if new_operations:
            pipe.rpush(order, *new_operations)
            # The oldest beyond the limit go: their ids are read back from the list's head by the script.
            excess = operations_kept + len(new_operations) - self.kept_per_call
            if excess > 0:
                pipe.execute_command("EVAL", _DROP_OLDEST, 2, order, ops, excess)  # queued on clusters too

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

    def list_calls(self, state: str | None = None, limit: int = 100, *, active: bool = False) -> list[Call]:
        index = self.key("state", state) if state is not None else self.key("active" if active else "calls")
        with self._errors():
            ids: list[str] = self.client.zrevrange(index, 0, limit * 2 + 10)
            docs = self.client.mget([self.key("call", call_id) for call_id in ids]) if ids else []
            expired = [call_id for call_id, doc in zip(ids, docs, strict=True) if doc is None]
            if expired:
                self.client.zrem(index, *expired)
        calls = [self._stored(doc) for doc in docs if doc is not None]
        if state is not None:
            calls = [call for call in calls if call.state == state]
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
            for _ in range(_MAX_ATTEMPTS):
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

    def ping(self) -> None:
        with self._errors():
            self.client.ping()
        self._check_memory_policy(every=0)

    def close(self) -> None:
        self.flush_completed()
        self.client.close()
