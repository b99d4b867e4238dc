"""Decisions taken by time rather than by a notification: a call gone quiet marked stale, a ``keepAlive`` due
claimed (or given back). Pure, as :mod:`webhook.state`; the stores run them in their transaction, so of every
process that finds one due, one takes it."""

from __future__ import annotations

from .events import Decision, Event
from .model import Call
from .state import rank


def needs_keepalive(call: Call) -> bool:
    """True while Graph expects ``keepAlive`` for the call: answered, and neither ending nor ended."""
    return call.keepalive_at is not None and rank(call.state) < rank("terminating")


def claim_keepalive(call: Call | None, due_before: str, now: str) -> Decision | None:
    """Take the call's next ``keepAlive`` at ``now`` if it is due (its last one before ``due_before``); None
    when it is not (another process took it, the call ended). The store runs this in its transaction, so of
    every process that finds the keepAlive due, one sends it."""
    if call is None or not needs_keepalive(call) or call.keepalive_at is None or call.keepalive_at >= due_before:
        return None
    claimed = call.copy()
    claimed.keepalive_at = now
    return Decision("updated", claimed, reason="keepAlive due")


def reschedule_keepalive(call: Call | None, claimed_at: str, last_at: str) -> Decision | None:
    """Give back a ``keepAlive`` claimed at ``claimed_at`` that did not reach Graph: as if the last one was
    sent at ``last_at`` (earlier), so that it is due again sooner than a whole period. None when the call
    moved on meanwhile (ended, or a later claim)."""
    if call is None or not needs_keepalive(call) or call.keepalive_at != claimed_at:
        return None
    rescheduled = call.copy()
    rescheduled.keepalive_at = last_at
    return Decision("updated", rescheduled, reason="keepAlive failed")


def mark_stale(call: Call | None, now: str, quiet_since: str) -> Decision | None:
    """Mark a call that has gone quiet (no notification since ``quiet_since``) as stale: once, and only while
    it has not ended; None when it is not to be marked.

    The sweeper calls this inside the store's transaction; ``call_stale`` fires for the mark, so exactly one
    sweeper's mark is heard however many run.
    """
    if call is None or call.ended or call.stale_since is not None or call.seen_at >= quiet_since:
        return None
    marked = call.copy()
    marked.stale_since = now
    event = Event("call_stale", marked.id, {"call": marked, "last_seen": call.seen_at})
    return Decision("updated", marked, (event,), reason="no notification for too long")
