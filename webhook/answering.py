"""Replying to an incoming call in time: Graph's limits, and who replied. Pure, as :mod:`webhook.state`.

Graph drops an incoming call that is not answered, rejected or redirected within 15 seconds (5 for a
policy-based recording call: Microsoft's "Answer call" page), ending it with 408/1106. What the bot did is
kept on the call (:attr:`~webhook.model.Call.reply`), written through the store before the request goes to
Graph, so that the answer-deadline guard (:mod:`webhook.answer_guard`) of any process sees a reply on its way
and never acts on a call a handler has answered, and a handler sees that the guard acted first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .events import Decision
from .model import Call

#: Graph's limit for replying to an incoming call, and for a policy-based recording call.
ANSWER_LIMIT_SECONDS = 15.0
POLICY_RECORDING_LIMIT_SECONDS = 5.0

#: What may reply: a handler (through its ``actions``), or the guard's fallback.
ReplyBy = Literal["handler", "guard"]


def is_policy_recording(data: Mapping[str, Any]) -> bool:
    """Whether an incoming call's ``resourceData`` invites a compliance recording bot (Microsoft's policy-based
    recording call: ``incomingContext.observedParticipantId``, and ``PolicyBasedRecording`` among the
    ``applicationMetadata.botData.inviteReasons``)."""
    context = data.get("incomingContext")
    if isinstance(context, dict) and context.get("observedParticipantId"):
        return True
    metadata = data.get("applicationMetadata")
    bot_data = metadata.get("botData") if isinstance(metadata, dict) else None
    reasons = bot_data.get("inviteReasons") if isinstance(bot_data, dict) else None
    return isinstance(reasons, list) and "PolicyBasedRecording" in reasons


def answer_limit(call: Call | None) -> float:
    """Seconds Graph gives this call, from its arrival, before it drops it unanswered."""
    if call is not None and is_policy_recording(call.data):
        return POLICY_RECORDING_LIMIT_SECONDS
    return ANSWER_LIMIT_SECONDS


def guard_delay(call: Call | None, deadline_seconds: float) -> float:
    """When the guard acts on ``call``, in seconds from its arrival: ``deadline_seconds`` (of Graph's 15), or
    the same share of a policy-based recording call's 5."""
    return deadline_seconds * answer_limit(call) / ANSWER_LIMIT_SECONDS


def claim_reply(call: Call | None, action: str, by: ReplyBy, now: str) -> Decision | None:
    """Record that ``by`` replies to the call with ``action`` (``answer``, ``reject``, ``redirect``) at ``now``;
    None when it may not: the call is unknown here or someone replied already, or (for the guard) the call is
    no longer incoming. The store runs this in its transaction, so a handler and the guard never both reply."""
    if call is None or call.reply is not None:
        return None
    if by == "guard" and (call.state != "incoming" or call.ended):
        return None
    claimed = call.copy()
    claimed.reply = {"action": action, "by": by, "at": now}
    return Decision("updated", claimed, reason=f"{action} by the {by}")


def release_reply(call: Call | None, claimed: Mapping[str, Any]) -> Decision | None:
    """Take back the reply ``claimed`` when its request failed, so that the guard may still act; None when the
    call no longer carries that claim."""
    if call is None or call.reply != claimed:
        return None
    released = call.copy()
    released.reply = None
    return Decision("updated", released, reason=f"{claimed.get('action')} failed")
