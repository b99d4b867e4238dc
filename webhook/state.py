"""The call state machine: what one notification does to one call. Pure: no I/O, no Flask, no clock.

:func:`decide` is the whole brain. The stores run it inside their transaction, so every process and every
store applies the same rules; the events it returns are sent only after that transaction commits.

Rules, from what Graph really sends (``GRAPH-NOTES.md``):

- ``deleted`` on the call resource ends the call whatever its body says (a rejected call's ``deleted`` has no
  state). ``terminated`` is final: nothing later reopens it.
- Calls move forward: ``incoming`` < ``establishing``/``ringing`` < in call (``established``, ``hold``,
  ``redirecting`` and any state Graph adds later) < ``transferring`` < ``transferAccepted`` < ``terminating`` <
  ``terminated``. A notification that would move the call backwards arrived late: it is recorded as stale and
  ignored. In-call states move freely among themselves (hold and back).
- The one documented way back is a failed transfer: ``transferring`` -> ``established`` with a failure
  ``resultInfo`` (code >= 400). A plain ``established`` after ``transferring`` is a late copy of the one before
  the transfer. A ``transferring`` that arrives while the call still carries the failure is the late copy of
  the attempt that already failed, and is stale too. (A genuine second attempt right after a failure would lose
  its ``transferring`` step, not its outcome: reordered delivery cannot tell the two apart.)
- Delivery may duplicate and reorder. A notification that changes nothing is a duplicate. A notification with
  the call's current state but new fields (``mediaState``, ``chatInfo``...) updates the call without a
  transition.
- Tones are deduplicated by ``sequenceId``; rosters are replaced whole, unless they carry
  ``rosterSequenceNumber`` older than the roster already applied; an operation result is recorded once per
  status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import roster as rosters
from .codes import as_int
from .delta import decide_delta
from .events import Decision, Event
from .model import CALL_STATES, JSON, Call, canonical_enum, has_type
from .notification import Notification
from .operations import decide_operation, operation_id, result_failed

_RANK = {
    "incoming": 0,
    "establishing": 1,
    "ringing": 1,
    "transferring": 3,
    "transferAccepted": 4,
    "terminating": 5,
    "terminated": 6,
}
_IN_CALL = 2  # established, hold, redirecting, and states Graph adds later
_STALE_KEPT = 50  # the most recent stale notifications kept on a call, for diagnosis


def rank(state: str | None) -> int:
    """How far along its life a call in ``state`` is; None (not known yet) comes before everything."""
    if state is None:
        return -1
    return _RANK.get(state, _IN_CALL)


def is_backwards(current: str | None, target: str, data: JSON) -> bool:
    """True when moving from ``current`` to ``target`` (with this resourceData) would go back in time."""
    if rank(target) >= rank(current):
        return False
    # A failed transfer returns to the call, saying so in resultInfo; nothing else comes back from a transfer.
    return not (current == "transferring" and rank(target) == _IN_CALL and result_failed(data))


def is_joining_notification(data: object) -> bool:
    """Whether a notification's ``resourceData`` is a ``participantJoiningNotification`` (policy-based
    recording; answered in the response body by :mod:`webhook.joining`, never applied to a call)."""
    return has_type(data, "participantJoiningNotification")


def decide(current: Call | None, notification: Notification, now: str) -> Decision:
    """Apply ``notification`` to ``current`` (None for a call never seen) at time ``now`` (an ISO string).

    Never mutates ``current``. Returns the new call and the events the change produces.
    """
    if notification.kind == "other":
        return Decision("ignored", None, reason=f"no state is kept for {notification.resource.path}")
    if is_joining_notification(notification.data):
        return Decision("ignored", None, reason="a participant joining is answered in the response, not stored")
    call = current.copy() if current is not None else Call(id=notification.call_id, created_at=now)
    call.seen_at = now
    # A notification proves the call is alive: a stale mark goes, whatever the notification does.
    call.stale_since = None
    if call.app_id is None:
        call.app_id = notification.claims.audience
    if call.tenant_id is None:
        data = notification.data if isinstance(notification.data, dict) else {}
        tenant = notification.claims.tenant_id or data.get("tenantId")
        call.tenant_id = tenant if isinstance(tenant, str) and tenant else None
    if rosters.is_delta(notification.data):
        decision = decide_delta(call, notification)
    elif notification.kind == "call":
        decision = _decide_call(call, notification, now)
    elif notification.kind == "participants":
        decision = _decide_roster(call, notification, now)
    else:
        decision = decide_operation(call, notification, now)
    return _finish(decision, current, notification, now)


def _finish(decision: Decision, current: Call | None, notification: Notification, now: str) -> Decision:
    call = decision.call
    assert call is not None
    if current is None and not decision.changed:
        # A first notification that changes nothing still creates the call, so it can be looked up.
        decision = Decision("updated", call, decision.events, decision.reason)
    if decision.changed:
        call.updated_at = now
    elif decision.outcome == "duplicate" and notification.origin == "graph":
        call.duplicates += 1
    elif decision.outcome == "stale":
        _record_stale(call, now, decision.reason)
    return decision


def _decide_call(call: Call, notification: Notification, now: str) -> Decision:
    data: JSON = notification.data
    target = _target_state(notification)
    stale = _stale_reason(call, target, data)
    if stale:
        return _decide_stale_call(call, notification, now, stale)

    events: list[Event] = []
    previous = call.state
    changes = _merge(call.data, _call_fields(data))
    transitioned = target is not None and target != previous
    if target is not None and transitioned:
        _transition(call, target, notification, now)
    if call.state == "terminated" and (transitioned or changes):
        _record_end(call, data, restart=transitioned)
    context = {"call": call, "notification": notification}
    if transitioned:
        extra = {"end_reason": call.end_reason} if call.state == "terminated" else {}
        events.append(Event("call_state_changed", call.state, {**context, "previous": previous, **extra}))
    elif changes:
        events.append(Event("call_updated", call.id, {**context, "changes": changes}))
    if call.media_active_at is None and call.state == "established" and _audio_active(call.data):
        call.media_active_at = now
        events.append(Event("call_media_active", call.id, context))
    tone = _new_tone(call, data.get("toneInfo"), now)
    if tone is not None:
        events.append(_tone_event(call, tone, notification))
    if transitioned:
        return Decision("applied", call, tuple(events))
    if changes or tone is not None:
        return Decision("updated", call, tuple(events))
    return Decision("duplicate", call)


def _target_state(notification: Notification) -> str | None:
    """The state a call notification moves the call into (deleted: terminated), or None for none."""
    if notification.change_type == "deleted":
        return "terminated"
    sent = notification.data.get("state")
    return canonical_enum(sent, CALL_STATES) if sent else None


def _call_fields(data: JSON) -> JSON:
    """What a call notification says of the call itself (its tone is an event, not a field)."""
    fields = {key: value for key, value in data.items() if key != "toneInfo"}
    if isinstance(fields.get("state"), str):
        fields["state"] = canonical_enum(fields["state"], CALL_STATES)
    return fields


def _decide_stale_call(call: Call, notification: Notification, now: str, stale: str) -> Decision:
    """A state that is old news; a tone it carries was still pressed, once."""
    tone = _new_tone(call, notification.data.get("toneInfo"), now)
    if tone is None:
        return Decision("stale", call, reason=stale)
    _record_stale(call, now, stale)
    return Decision("updated", call, (_tone_event(call, tone, notification),))


def _transition(call: Call, target: str, notification: Notification, now: str) -> None:
    """Move the call into ``target``, recording the step."""
    step = {"from": call.state, "to": target, "changeType": notification.change_type, "at": now}
    if notification.origin != "graph":
        step["origin"] = notification.origin  # learnt by asking Graph, not told by a callback
    call.state = target
    call.add_step(step)
    if call.keepalive_at is None and _IN_CALL <= rank(target) < _RANK["terminating"]:
        call.keepalive_at = now  # answered: Graph wants a keepAlive within 45 minutes from here


def _record_end(call: Call, data: JSON, *, restart: bool) -> None:
    """Why the call ended is told by the notifications that ended it, not by an earlier failed transfer:
    ``restart`` (the call just ended) forgets what an earlier one said."""
    end = {} if restart or call.end is None else dict(call.end)
    end.update({key: data[key] for key in ("resultInfo", "terminationReason") if key in data})
    call.end = end


def _stale_reason(call: Call, target: str | None, data: JSON) -> str:
    """Why a call notification's state is too late to apply, or "" when it is not."""
    if call.state == "terminated" and target != "terminated":
        return f"{target or 'an update'} after the call was terminated"
    if target is not None and target != call.state and is_backwards(call.state, target, data):
        return f"{target} after {call.state}"
    if target == "transferring" and rank(call.state) == _IN_CALL and result_failed(call.data):
        return "transferring after that transfer already failed"
    return ""


def _record_stale(call: Call, now: str, reason: str) -> None:
    call.stale = [*call.stale, {"at": now, "reason": reason}][-_STALE_KEPT:]


def _tone_event(call: Call, tone: JSON, notification: Notification) -> Event:
    kwargs = {"call": call, "notification": notification, "tone": tone["tone"], "sequence_id": tone["sequenceId"]}
    return Event("tone_received", tone["tone"], kwargs)


def _audio_active(data: JSON) -> bool:
    media = data.get("mediaState")
    audio = media.get("audio") if isinstance(media, dict) else None
    return isinstance(audio, str) and audio.lower() == "active"


def _merge(target: JSON, fields: JSON) -> dict[str, JSON]:
    """Merge top-level ``fields`` into ``target``; return what changed, ``{field: {"old": ..., "new": ...}}``.

    ``@odata.*`` bookkeeping (types, etags) is merged but is not a change: a notification that differs only
    there is a duplicate. The state is not a change either: a new state is a transition.
    """
    changes: dict[str, JSON] = {}
    for key, value in fields.items():
        if key in target and target[key] == value:
            continue
        if not key.startswith("@odata.") and key != "state":
            changes[key] = {"old": target.get(key), "new": value}
        target[key] = value
    return changes


def _new_tone(call: Call, tone_info: Any, now: str) -> JSON | None:
    if not isinstance(tone_info, dict) or not tone_info.get("tone"):
        return None
    sequence_id = tone_info.get("sequenceId")
    if sequence_id is not None and any(seen.get("sequenceId") == sequence_id for seen in call.tones):
        return None
    tone = {"tone": tone_info["tone"], "sequenceId": sequence_id, "at": now}
    call.tones.append(tone)
    return tone


def _decide_roster(call: Call, notification: Notification, now: str) -> Decision:
    if call.state == "terminated":
        return Decision("stale", call, reason="roster after the call was terminated")
    roster: list[JSON] = notification.data
    numbers = [as_int(p.get("rosterSequenceNumber")) for p in roster]
    # A roster read back from Graph is the truth as of now, whatever numbers it carries.
    version = None if notification.origin == "resync" else max((n for n in numbers if n is not None), default=None)
    if version is not None and call.roster_version is not None and version < call.roster_version:
        return Decision("stale", call, reason=f"roster {version} older than roster {call.roster_version}")
    change = rosters.apply(call.participants, roster, removal=notification.change_type == "deleted")
    if change.participants == call.participants and (version is None or version == call.roster_version):
        return Decision("duplicate", call)
    call.participants = change.participants
    if version is not None:
        call.roster_version = version
    return Decision("updated", call, rosters.roster_events(call, notification, change))


@dataclass(frozen=True)
class Needs:
    """What :func:`decide` reads of a call's collections for one notification, so that a store reads only
    that: the roster for a roster, the one operation for its result, the tones of the ``sequenceId`` a tone
    carries. History is only appended to, never read."""

    roster: bool = False
    operation: str | None = None
    tone_sequence: int | None = None


def needs_of(notification: Notification) -> Needs:
    """The :class:`Needs` of ``notification``."""
    if notification.kind == "participants" or rosters.is_delta(notification.data):
        return Needs(roster=True)
    data = notification.data if isinstance(notification.data, dict) else {}
    if notification.kind == "operation":
        return Needs(operation=operation_id(notification, data))
    tone = data.get("toneInfo")
    sequence = tone.get("sequenceId") if isinstance(tone, dict) else None
    return Needs(tone_sequence=sequence if isinstance(sequence, int) else None)
