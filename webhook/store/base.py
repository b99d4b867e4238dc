"""The call store interface (what both engines share beyond it: :mod:`.rows`, :mod:`.completions`).

A store keeps one record per call and makes :func:`webhook.state.decide` atomic: ``apply`` reads the call,
decides, and writes the result in one transaction, so that with any number of processes applying
notifications to the same call, each transition is applied exactly once and its events are returned to exactly
one caller. The same transaction writes each event that has receivers to the outbox, leased to the caller;
the caller completes the outbox rows once every handler has run. Rows whose owner died or whose lease expired
are claimed again by :meth:`CallStore.claim_orphans`: no applied transition is silently skipped.
"""

from __future__ import annotations

import abc
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..clock import iso
from ..events import Decision, Event
from ..failures import Failure
from ..model import Call
from ..notification import Notification
from ..state import Needs, decide, needs_of
from ..stored import StoredCall
from ..timers import mark_stale
from .completions import Completions

#: Held while a store makes its process's queue of completions (once per store and process).
_COMPLETIONS_LOCK = threading.Lock()

#: Decides what to write to one call, given the call as stored (None if never seen); None writes nothing.
Choose = Callable[["Call | None"], "Decision | None"]

#: Decides whether an event needs the outbox (it has receivers); the default says every event does.
NeedsDelivery = Callable[[Event], bool]


def _always(event: Event) -> bool:
    return True


@dataclass(frozen=True)
class Lease:
    """The outbox side of a commit: which of its events need delivering (``needs_delivery``: those with
    receivers), which process delivers them (``owner``) and until when (``until``, epoch seconds) before
    another may deliver them again."""

    owner: str = ""
    until: float = 0.0
    needs_delivery: NeedsDelivery = _always


#: No owner, every event in the outbox: for tools and tests that apply notifications themselves.
NO_LEASE = Lease()


class CallStore(abc.ABC):
    """One interface, two engines: SQLite (``sqlite:///``) and Redis (``redis://``)."""

    #: The URL the store was opened with, with any password masked.
    url: str
    #: The kind of store (``sqlite``, ``redis``): what ``/readyz`` may tell anyone.
    engine: str

    def apply(
        self,
        notification: Notification,
        now: str,
        *,
        lease: Lease = NO_LEASE,
    ) -> Decision:
        """Apply one notification atomically at time ``now``; return the committed decision.

        The events ``lease`` wants delivered are written to the outbox in the same transaction, leased to its
        owner until its end; they come back with their outbox ``id``.
        Raises :class:`~webhook.errors.StoreUnavailable` when the store cannot be reached or stays busy past
        its timeout; nothing is written in that case.
        """
        self._check_writable()
        decision = self._decide_and_commit(
            notification.call_id, now, lambda current: decide(current, notification, now), lease, needs_of(notification)
        )
        assert decision is not None  # decide always decides
        return decision

    def _check_writable(self) -> None:
        """Raise :class:`~webhook.errors.StoreUnavailable` when a notification written now could be lost
        after its 202 (an engine that knows such a state says so; by default none)."""
        return

    def update(
        self,
        call_id: str,
        now: str,
        choose: Choose,
        *,
        lease: Lease = NO_LEASE,
    ) -> Decision | None:
        """Read the call, let ``choose`` decide, and commit its decision atomically, as :meth:`apply` does with
        :func:`~webhook.state.decide`. ``choose`` is given the call's own record without its collections, and
        must not change it (return a copy, as ``decide`` does). None when ``choose`` declined; raises
        :class:`~webhook.errors.StoreUnavailable` as :meth:`apply` does. What upkeep (stale marks, keep-alive
        claims) is built on."""
        return self._decide_and_commit(call_id, now, choose, lease, Needs())

    @abc.abstractmethod
    def _decide_and_commit(self, call_id: str, now: str, choose: Choose, lease: Lease, needs: Needs) -> Decision | None:
        """The one read-decide-commit of an engine, which :meth:`apply` and :meth:`update` are: read the call's
        own record and of its collections what ``needs`` names, let ``choose`` decide, and commit the rows the
        decision changed and its outbox rows atomically (durably, as the engine promises); None when ``choose``
        declined. The decision comes back with its call as a :class:`StoredCall` (see :func:`as_stored`)."""

    @abc.abstractmethod
    def get(self, call_id: str) -> Call | None:
        """The call with this (canonical) id, or None; its collections are read when first used."""

    @abc.abstractmethod
    def read_collection(self, call_id: str, name: str, history_upto: int | None = None) -> Any:
        """One collection of a stored call: ``history`` (its first ``history_upto`` transitions, as kept),
        ``participants``, ``tones`` (lists) or ``operations`` (a dict by id)."""

    def stored(self, call: Call, known: Mapping[str, Any] | None = None) -> StoredCall:
        """``call`` as read from this store: the collections not in ``known`` read when first used, the history
        as it was at ``call``'s last transition."""
        call_id, upto = call.id, call.history_total
        return StoredCall.of(call, lambda name: self.read_collection(call_id, name, upto), known)

    @abc.abstractmethod
    def list_calls(
        self, state: str | None = None, limit: int = 100, *, active: bool = False, app: str | None = None
    ) -> list[Call]:
        """Calls, most recently heard of first (by ``seen_at``, then id, both descending); only those in
        ``state``, with ``active`` only those not ended (so ``terminated`` and ``active`` find none), and with
        ``app`` only the calls of that bot."""

    @abc.abstractmethod
    def count_calls(self, what: str) -> int:
        """How many calls are ``"active"`` (not ended) or ``"stale"`` (active, marked stale)."""

    @abc.abstractmethod
    def quiet_calls(self, seen_before: float, limit: int = 100) -> list[str]:
        """Ids of active calls not yet marked stale whose last notification came before ``seen_before`` (epoch)."""

    def mark_stale(
        self,
        call_id: str,
        seen_before: float,
        now: str,
        *,
        lease: Lease = NO_LEASE,
    ) -> Decision | None:
        """Atomically mark the call stale if it is still active, unmarked and quiet; None when it is not.

        Of several sweepers racing on one call, exactly one gets the decision (and its ``call_stale`` event).
        """
        quiet_since = iso(seen_before)
        return self.update(call_id, now, lambda call: mark_stale(call, now, quiet_since), lease=lease)

    @abc.abstractmethod
    def keepalives_due(self, due_before: float, limit: int = 100) -> list[str]:
        """Ids of calls that need ``keepAlive`` (:func:`~webhook.timers.needs_keepalive`) and last got one
        before ``due_before`` (epoch), longest waiting first."""

    #: Longest a delivered event's outbox row waits for this process's next commit to remove it (seconds).
    complete_within: float = 1.0

    def complete(self, event_ids: Iterable[int]) -> None:
        """Remove delivered events from the outbox: by this process's next commit, inside its transaction (a
        delivered row costs no write of its own), or within :attr:`complete_within` seconds when none comes.

        Until then the rows stay leased to this process, so no other delivers them again, unless this one dies
        first: then they are delivered again, at least once, as after any crash.
        """
        self._completions().add(list(event_ids))

    def flush_completed(self) -> None:
        """Remove now the rows :meth:`complete` left for the next commit (at shutdown, before a count)."""
        self._completions().flush()

    @abc.abstractmethod
    def _remove_events(self, event_ids: list[int]) -> None:
        """Delete these outbox rows in a write of their own."""

    def _completions(self) -> Completions:
        """This process's queue of delivered rows (a forked child starts with its own: the parent's rows are
        the parent's to remove)."""
        found: Completions | None = self.__dict__.get("_completed")
        if found is None or found.pid != os.getpid():
            with _COMPLETIONS_LOCK:
                found = self.__dict__.get("_completed")
                if found is None or found.pid != os.getpid():
                    found = self.__dict__["_completed"] = Completions(self._remove_events, self.complete_within)
        return found

    @abc.abstractmethod
    def claim_orphans(
        self, owner: str, now: float, lease_until: float, is_dead: Callable[[str], bool], limit: int = 100
    ) -> list[Event]:
        """Lease to ``owner`` the outbox events whose lease expired before ``now`` or whose owner ``is_dead``."""

    def pending_events(self) -> int:
        """How many events wait in the outbox (delivering or orphaned); rows already delivered by this process
        are removed first."""
        self.flush_completed()
        return self._count_events()

    @abc.abstractmethod
    def _count_events(self) -> int:
        """How many rows the outbox holds."""

    @abc.abstractmethod
    def record_failure(self, call_id: str | None, handler: str, signal: str, event: str, error: str, now: str) -> int:
        """Keep a handler failure; return its id."""

    @abc.abstractmethod
    def failures(self, *, include_resolved: bool = False, limit: int = 100) -> list[Failure]:
        """Handler failures, oldest first."""

    @abc.abstractmethod
    def failure(self, failure_id: int) -> Failure | None: ...

    @abc.abstractmethod
    def update_failure(self, failure_id: int, *, resolved: bool, error: str | None, now: str) -> None:
        """Count one more attempt: resolved, or failed again with ``error``."""

    def open(self) -> None:  # noqa: B027 - engines without a schema or a start-up check need nothing here
        """Connect and check the store now (schema, server settings) rather than on first use.

        Raises :class:`~webhook.errors.ConfigError` for what no retry fixes (a schema newer than this release, a
        server set up to lose data) and :class:`~webhook.errors.StoreUnavailable` for what may pass.
        """

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise :class:`~webhook.errors.StoreUnavailable` unless the store answers."""

    def close(self) -> None:  # noqa: B027 - optional for engines without resources
        """Release connections held by this process."""
