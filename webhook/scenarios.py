"""Call lifecycles as Graph delivers them, following the sequences in Microsoft's docs.

Each scenario is the list of notification bodies one call produces, in the order Graph sends them, with the
state the call must end in and the transitions it goes through. Tests, benchmarks and load runs deliver them
(:mod:`webhook.simulate`), duplicated and shuffled at will.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .builders import (
    call_ended,
    call_notification,
    envelope,
    incoming_call,
    new_id,
    operation_notification,
    participant,
    result_info,
    roster_notification,
    tone_notification,
)

JSON = dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    """One call: its bodies in delivery order, its final state and the states it passes through in order."""

    name: str
    call_id: str
    bodies: tuple[JSON, ...]
    final_state: str
    states: tuple[str, ...]


def answered_and_hung_up(call_id: str) -> Scenario:
    """An incoming call answered by the bot, then hung up by the caller (Delete-call docs: codes as strings)."""
    return Scenario(
        "answered_and_hung_up",
        call_id,
        (
            envelope(incoming_call(call_id)),
            envelope(call_notification(call_id, "establishing")),
            envelope(call_notification(call_id, "established")),
            envelope(call_notification(call_id, "terminating")),
            envelope(call_ended(call_id, result_info("200", "5001", "The conversation has ended."))),
        ),
        "terminated",
        ("incoming", "establishing", "established", "terminating", "terminated"),
    )


def outgoing(call_id: str) -> Scenario:
    """A call the bot places, with a prompt played, ended by the bot."""
    return Scenario(
        "outgoing",
        call_id,
        (
            envelope(call_notification(call_id, "establishing", direction="outgoing")),
            envelope(call_notification(call_id, "established", direction="outgoing")),
            envelope(
                operation_notification(call_id, new_id(), "playPrompt", completion_reason="completedSuccessfully")
            ),
            envelope(call_ended(call_id, result_info(200, 7000, "Call ended by the application."))),
        ),
        "terminated",
        ("establishing", "established", "terminated"),
    )


def rejected(call_id: str) -> Scenario:
    """An incoming call the bot rejects: the ``deleted`` carries no state at all."""
    deleted = call_notification(call_id, None, change_type="deleted")
    return Scenario(
        "rejected",
        call_id,
        (envelope(incoming_call(call_id)), envelope(deleted)),
        "terminated",
        ("incoming", "terminated"),
    )


def redirected(call_id: str) -> Scenario:
    """An incoming call the bot redirects: ``deleted`` / ``terminated`` without resultInfo."""
    return Scenario(
        "redirected",
        call_id,
        (envelope(incoming_call(call_id)), envelope(call_ended(call_id))),
        "terminated",
        ("incoming", "terminated"),
    )


def transferred(call_id: str) -> Scenario:
    """A call the bot transfers: transferring, transferAccepted, then terminated with 0/7015."""
    return Scenario(
        "transferred",
        call_id,
        (
            envelope(incoming_call(call_id)),
            envelope(call_notification(call_id, "establishing")),
            envelope(call_notification(call_id, "established")),
            envelope(call_notification(call_id, "transferring")),
            envelope(call_notification(call_id, "transferAccepted")),
            envelope(call_ended(call_id, result_info(0, 7015, "GracefulTransferCompleted"))),
        ),
        "terminated",
        ("incoming", "establishing", "established", "transferring", "transferAccepted", "terminated"),
    )


def transfer_failed(call_id: str) -> Scenario:
    """A transfer that fails: back to ``established`` with resultInfo 500 and ``subCode`` 7000."""
    failed = call_notification(
        call_id,
        "established",
        result={"@odata.type": "#microsoft.graph.resultInfo", "code": 500, "subCode": 7000, "message": "failed"},
    )
    return Scenario(
        "transfer_failed",
        call_id,
        (
            envelope(incoming_call(call_id)),
            envelope(call_notification(call_id, "establishing")),
            envelope(call_notification(call_id, "established")),
            envelope(call_notification(call_id, "transferring")),
            envelope(failed),
        ),
        "established",
        ("incoming", "establishing", "established", "transferring", "established"),
    )


def meeting_join(call_id: str) -> Scenario:
    """The bot joins a meeting; people join, mute and leave (rosters numbered); the meeting ends for the bot."""
    bot = participant(new_id(), "Bot", application=True)
    alice, bob = participant(new_id(), "Alice"), participant(new_id(), "Bob")

    def roster(number: int, *people: JSON) -> JSON:
        return envelope(roster_notification(call_id, [dict(p, rosterSequenceNumber=number) for p in people]))

    chat = {"@odata.type": "#microsoft.graph.chatInfo", "threadId": f"19:meeting_{call_id}@thread.v2", "messageId": "0"}
    return Scenario(
        "meeting_join",
        call_id,
        (
            envelope(call_notification(call_id, "establishing", direction="outgoing", chatInfo=chat)),
            envelope(call_notification(call_id, "established", direction="outgoing", chatInfo=chat)),
            roster(1, bot),
            roster(2, bot, alice),
            roster(3, bot, alice, bob),
            roster(4, bot, dict(alice, isMuted=True), bob),
            roster(5, bot, dict(alice, isMuted=True)),
            envelope(call_ended(call_id, result_info(200, 4097, "The call was ended by the other participant."))),
        ),
        "terminated",
        ("establishing", "established", "terminated"),
    )


def record_and_dtmf(call_id: str) -> Scenario:
    """An incoming call answered; audio comes up; a prompt, a recording and DTMF tones; the caller hangs up."""
    audio = {"@odata.type": "#microsoft.graph.callMediaState", "audio": "active"}
    return Scenario(
        "record_and_dtmf",
        call_id,
        (
            envelope(incoming_call(call_id)),
            envelope(call_notification(call_id, "establishing")),
            envelope(call_notification(call_id, "established")),
            envelope(call_notification(call_id, "established", mediaState=audio)),
            envelope(
                operation_notification(call_id, new_id(), "playPrompt", completion_reason="completedSuccessfully")
            ),
            envelope(tone_notification(call_id, "tone1", 1)),
            envelope(tone_notification(call_id, "tone5", 2)),
            envelope(
                operation_notification(
                    call_id, new_id(), "record", result=result_info(200, 8515, "Action completed, max record duration")
                )
            ),
            envelope(
                operation_notification(
                    call_id,
                    new_id(),
                    "sendDtmfTones",
                    completion_reason="mediaOperationCanceled",
                    result=result_info(400, 8508, "Action falied, the operation was cancelled."),
                )
            ),
            envelope(call_ended(call_id, result_info(200, 4097, "The call was ended by the other participant."))),
        ),
        "terminated",
        ("incoming", "establishing", "established", "terminated"),
    )


SCENARIOS: dict[str, Callable[[str], Scenario]] = {
    "answered_and_hung_up": answered_and_hung_up,
    "outgoing": outgoing,
    "rejected": rejected,
    "redirected": redirected,
    "transferred": transferred,
    "transfer_failed": transfer_failed,
    "meeting_join": meeting_join,
    "record_and_dtmf": record_and_dtmf,
}


def make_calls(count: int, *, seed: int = 0) -> list[Scenario]:
    """``count`` calls with fresh ids, the scenarios taken in turn (reproducible for a given seed)."""
    rng = random.Random(seed)
    names = sorted(SCENARIOS)
    return [SCENARIOS[names[i % len(names)]](_seeded_id(rng)) for i in range(count)]


def _seeded_id(rng: random.Random) -> str:
    value = f"{rng.getrandbits(128):032x}"
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
