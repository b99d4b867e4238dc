"""Rosters: who is in a call, who joined, who left. Pure.

A participant is known by its ``id``, or by its identity (``info.identity``: user, application, phone...) while
the id is still null, as in an invited participant's first roster. A participant listed with ``removedState``
has left. Participants whose identity is an application (``application`` or ``applicationInstance``), the bot
itself in the usual case, are marked ``"isBot": true`` in what the signals carry, so handlers can skip them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .events import Event
from .model import has_type

JSON = dict[str, Any]
_APPLICATION_KINDS = ("application", "applicationInstance")


def identity(participant: JSON) -> tuple[str, str] | None:
    """``(kind, id)`` of the participant's identity (``("user", "6c9e...")``), or None when it has none."""
    info = participant.get("info")
    ident = info.get("identity") if isinstance(info, dict) else None
    if not isinstance(ident, dict):
        return None
    for kind, value in ident.items():
        if kind.startswith("@") or not isinstance(value, dict):
            continue
        ident_id = value.get("id")
        if isinstance(ident_id, str) and ident_id:
            return kind, ident_id.lower()
    return None


def keys(participant: JSON) -> set[str]:
    """Every key the participant can be recognized by: its id and its identity."""
    found = set()
    if isinstance(participant.get("id"), str) and participant["id"]:
        found.add("id:" + participant["id"].lower())
    ident = identity(participant)
    if ident is not None:
        found.add(f"identity:{ident[0]}:{ident[1]}")
    return found


def is_bot(participant: JSON) -> bool:
    ident = identity(participant)
    return ident is not None and ident[0] in _APPLICATION_KINDS


def marked(participant: JSON) -> JSON:
    return {**participant, "isBot": is_bot(participant)}


@dataclass(frozen=True)
class RosterChange:
    participants: list[JSON]
    joined: list[JSON]
    left: list[JSON]


def apply(current: list[JSON], roster: list[JSON], *, removal: bool = False) -> RosterChange:
    """The roster after ``roster`` arrives, and who joined and left compared with ``current``.

    A roster lists everyone present (``removal=False``); a ``deleted`` roster notification (``removal=True``)
    lists participants who left.
    """
    if not removal:
        participants = [p for p in roster if not p.get("removedState")]
        if _same_ids(current, participants):  # a mute, a hand raised: nobody joined or left
            return RosterChange(participants, [], [])
    # Each participant's keys once: a 1,000-person meeting sends its whole roster on every mute.
    current_keys = [keys(p) for p in current]
    if removal:
        gone = set().union(*(keys(p) for p in roster))
        kept = [not (found & gone) for found in current_keys]
        participants = [p for p, keep in zip(current, kept, strict=True) if keep]
        participant_keys = [found for found, keep in zip(current_keys, kept, strict=True) if keep]
    else:
        participant_keys = [keys(p) for p in participants]
    before: set[str] = set().union(*current_keys)
    after: set[str] = set().union(*participant_keys)
    joined = [p for p, found in zip(participants, participant_keys, strict=True) if not (found & before)]
    left = [p for p, found in zip(current, current_keys, strict=True) if not (found & after)]
    return RosterChange(participants, joined, left)


def roster_events(call: Any, notification: Any, change: RosterChange) -> tuple[Event, ...]:
    """What a roster change tells the handlers: the new roster, then who joined and who left (marked
    ``isBot``), each with the call and the notification."""
    context = {"call": call, "notification": notification}
    events = [Event("participants_updated", call.id, {**context, "participants": change.participants})]
    if change.joined:
        events.append(
            Event("participants_joined", call.id, {**context, "participants": list(map(marked, change.joined))})
        )
    if change.left:
        events.append(Event("participants_left", call.id, {**context, "participants": list(map(marked, change.left))}))
    return tuple(events)


def is_delta(data: Any) -> bool:
    """Whether a notification's ``resourceData`` is a delta roster (``#microsoft.graph.deltaParticipants``: the
    participants changed since the last roster, with its ``sequenceNumber``), sent to a call answered or joined
    with ``isDeltaRosterEnabled``."""
    return has_type(data, "deltaParticipants")


def apply_delta(current: list[JSON], changed: list[JSON]) -> RosterChange:
    """The roster after a delta: each changed participant replaces the one it is (by id or identity) or joins;
    one listed with ``removedState`` leaves."""
    participants = list(current)
    current_keys = [keys(p) for p in participants]
    joined: list[JSON] = []
    left: list[JSON] = []
    for participant in changed:
        found = keys(participant)
        at = next((i for i, known in enumerate(current_keys) if known & found), None)
        if participant.get("removedState"):
            if at is not None:
                left.append(participants.pop(at))
                current_keys.pop(at)
        elif at is None:
            participants.append(participant)
            current_keys.append(found)
            joined.append(participant)
        else:
            participants[at] = participant
            current_keys[at] = current_keys[at] | found
    return RosterChange(participants, joined, left)


def _same_ids(current: list[JSON], participants: list[JSON]) -> bool:
    """Whether both list the same participants by id, in the same order: then each is known in the other by its
    id, whatever their identities, and nobody joined or left (what :func:`apply` would find, without computing
    every participant's keys twice)."""
    if len(current) != len(participants):
        return False
    ids = [p.get("id") for p in participants]
    return ids == [p.get("id") for p in current] and all(type(found) is str and found for found in ids)
