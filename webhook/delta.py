"""Delta rosters: a call answered or joined with ``isDeltaRosterEnabled`` gets only the participants that
changed (Graph's ``deltaParticipants``), each body numbered by ``sequenceNumber``. Pure, as :mod:`webhook.state`.

Deltas are applied in order: one numbered at or below the last applied is old news (a duplicate or a late
copy) and changes nothing; one that skips numbers is applied, and the decision asks for the roster to be read
back from Graph (``repair="roster"``), since what the missing ones said is lost.
"""

from __future__ import annotations

from . import roster as rosters
from .codes import as_int
from .events import Decision, Outcome
from .model import JSON, Call
from .notification import Notification


def decide_delta(call: Call, notification: Notification) -> Decision:
    """Apply one delta roster to ``call`` (a copy the caller may change)."""
    if call.state == "terminated":
        return Decision("stale", call, reason="roster after the call was terminated")
    data: JSON = notification.data
    number = as_int(data.get("sequenceNumber"))
    applied = call.roster_version
    if number is not None and applied is not None and number <= applied:
        outcome: Outcome = "duplicate" if number == applied else "stale"
        return Decision(outcome, call, reason=f"delta roster {number} after roster {applied}")
    changed = [p for p in data.get("participants") or [] if isinstance(p, dict)]
    change = rosters.apply_delta(call.participants, changed)
    missing = number - applied - 1 if number is not None and applied is not None else 0
    call.participants = change.participants
    if number is not None:
        call.roster_version = number
    events = rosters.roster_events(call, notification, change)
    if missing:
        reason = f"delta roster {number} after roster {applied}: {missing} missing, the roster is read back"
        return Decision("updated", call, events, reason, repair="roster")
    return Decision("updated", call, events)
