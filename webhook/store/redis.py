"""The shared store: Redis, for several receiver instances behind a load balancer.

The same contract as SQLite, with the same brain: :func:`~webhook.state.decide` runs in Python between
``WATCH`` on the call's key and ``MULTI``/``EXEC``. If another process changes the call in between, ``EXEC``
fails and the notification is decided again on what that process wrote, so each transition is applied, and its
events returned, exactly once across every process on every instance. The call, its indexes and its outbox rows
are written by one ``EXEC``: a call is never half-written.

The keys are listed in :mod:`webhook.store.redis_client`. Every Redis error (unreachable, timeout,
loading...) becomes :class:`~webhook.errors.StoreUnavailable` (503): Graph retries, and the client reconnects
by itself when Redis is back.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import WatchError

from .. import codec
from ..clock import epoch
from ..errors import StoreUnavailable
from ..events import Decision
from ..model import Call
from ..settings import default
from ..state import Needs
from ..timers import needs_keepalive
from .base import Choose, Lease
from .redis_client import MAX_ATTEMPTS
from .redis_records import _COLLECTION_KEYS, RedisRecords
from .rows import HISTORY_LIMIT, KEPT_PER_CALL, Rows, as_stored, json_rows, partial_call, rows_of

logger = logging.getLogger("webhook.store")


# Drop the oldest COUNT operations of a call: their ids from the head of the order list, then their records.
_DROP_OLDEST = """
local ids = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
redis.call('LTRIM', KEYS[1], tonumber(ARGV[1]), -1)
if #ids > 0 then redis.call('HDEL', KEYS[2], unpack(ids)) end
return #ids
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


class RedisStore(RedisRecords):
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
        super().__init__(url, timeout=timeout, prefix=prefix, allow_eviction=allow_eviction, cluster=cluster)
        self.history_limit, self.kept_per_call = history_limit, kept_per_call
        self.retention_seconds = retention_seconds

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
                for _ in range(MAX_ATTEMPTS):
                    with self.client.pipeline(transaction=True) as pipe:
                        try:
                            pipe.watch(call_key)
                            raw, found = self._read(call_id, needs)  # after WATCH: a change since fails EXEC
                            loaded, legacy = self._load(raw, found, needs) if raw else (None, None)
                            decision = choose(loaded)
                            if decision is None:
                                return None
                            event_ids = self._commit(pipe, decision, loaded, legacy, needs, lease, delivered, found)
                            carried = True
                            return as_stored(self, decision, needs, event_ids)
                        except WatchError:
                            continue
        finally:
            if not carried:  # no commit took them: the next one, or the timer, will
                self._completions().add(delivered, first=True)
        # Not None: that says "nothing to write", and a caller must not take this for it.
        raise StoreUnavailable(
            f"call {call_id} changed {MAX_ATTEMPTS} times while it was being updated; retry", reason="busy"
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
    ) -> list[int | None]:
        """Write a decision's call, the rows it changed and its outbox rows in one MULTI/EXEC on a watching
        pipeline, and delete the outbox rows of ``delivered`` events; the outbox row of each of its events, None
        for those nobody receives (each row takes its id inside the transaction, from a script, so that no round
        trip is spent on ids before it).

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
        numbers = iter([int(reply) for reply in replies[len(replies) - len(wanted) :]])
        return [next(numbers) if any(event is w for w in wanted) else None for event in decision.events]

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
            if call.app_id is not None:
                pipe.zremrangebyscore(self.key("app", call.app_id), "-inf", horizon)
        else:
            pipe.set(self.key("call", call_id), doc)  # no expiry while the call is active
            pipe.zadd(self.key("active"), {call_id: score})
        if previous is not None and previous.state is not None and previous.state != call.state:
            pipe.zrem(self.key("state", previous.state), call_id)
        if call.state is not None:
            pipe.zadd(self.key("state", call.state), {call_id: score})
        pipe.zadd(self.key("calls"), {call_id: score})
        if call.app_id is not None:
            pipe.zadd(self.key("app", call.app_id), {call_id: score})
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

    def close(self) -> None:
        self.flush_completed()
        self.client.close()
