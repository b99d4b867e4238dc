"""What each action of the fake Graph answers, and the notifications Graph sends after it.

Every synchronous answer and notification sequence follows Microsoft's API pages (``call-answer``,
``call-reject``, ``call-redirect``, ``call-transfer``, ``call-playprompt``, ``call-record``,
``call-subscribetotone``, ``call-keepalive``, ``call-mute``, ``call-unmute``, ``call-cancelmediaprocessing``,
``call-updaterecordingstatus``, ``participant-invite``, ``call-delete``) and the bodies in their examples; where
a page is silent, the choice is said where it is made. Nothing here does I/O: :class:`~webhook.fakegraph.FakeGraph`
serves it over HTTP and sends the notifications it returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ..builders import GRAPH, JSON
from .calls import (
    CANCELLED,
    ENDED_BY_BOT,
    REDIRECTED,
    SUCCEEDED,
    TRANSFER_FAILED,
    TRANSFERRED,
    FakeCall,
    Operation,
    bad_request,
    participant,
)


@dataclass
class Reply:
    """What an action answers at once, and the notifications Graph sends after it, in order."""

    status: int
    body: JSON | None = None
    headers: dict[str, str] = field(default_factory=dict)
    then: list[JSON] = field(default_factory=list)


def _require(body: JSON, *names: str) -> None:
    missing = [name for name in names if body.get(name) in (None, "", [], {})]
    if missing:
        raise bad_request(f"Missing required parameter(s): {', '.join(missing)}.")


def _operation(body: JSON, kind: str, status: str = "completed") -> Operation:
    return Operation(str(uuid.uuid4()), kind, body.get("clientContext"), status)


def _start(call: FakeCall, body: JSON, kind: str, now: float, completion: JSON) -> Reply:
    """200 with the running operation and its ``Location`` (playPrompt, recordResponse, invite); its result
    follows as a notification once it is due (:attr:`FakeCall.operation_seconds`)."""
    operation = _operation(body, kind, "running")
    operation.due, operation.completion = now + call.operation_seconds.get(kind, 0.0), completion
    call.operations[operation.id] = operation
    location = f"https://graph.microsoft.com/v1.0{call.url}/operations/{operation.id}"
    return Reply(200, operation.resource(), {"Location": location}, call.due_operations(now))


def _completed(body: JSON, kind: str) -> Reply:
    """200 with an operation that completed at once: no notification follows (subscribeToTone, mute...)."""
    return Reply(200, _operation(body, kind).resource(SUCCEEDED))


def answer(call: FakeCall, body: JSON, now: float) -> Reply:
    if call.state != "incoming":
        raise bad_request(f"The call is {call.state}: only an incoming call can be answered.")
    _require(body, "callbackUri", "acceptedModalities", "mediaConfig")
    if not isinstance(body["acceptedModalities"], list):
        raise bad_request('acceptedModalities must be a list, e.g. ["audio"].')
    call.callback_uri = str(body["callbackUri"])
    call.move("establishing")
    first = call.changed()
    call.move("established")
    call.alive_at = now
    # The captured calls: established, then established again once audio flows (mediaState.audio active).
    media = {"@odata.type": GRAPH + "callMediaState", "audio": "active"}
    return Reply(202, then=[first, call.changed(), call.changed(mediaState=media)])


def reject(call: FakeCall, body: JSON, now: float) -> Reply:
    if call.state != "incoming":
        raise bad_request(f"The call is {call.state}: only an incoming call can be rejected.")
    if body.get("reason", "none") not in ("none", "busy", "forbidden", "unknownFutureValue"):
        raise bad_request("reason must be none, busy or forbidden.")
    call.move("terminated")
    # The reject page's example: a deleted notification whose call carries no state at all.
    return Reply(
        202, then=[{"changeType": "deleted", "resourceUrl": call.url, "resourceData": {"@odata.type": GRAPH + "call"}}]
    )


def redirect(call: FakeCall, body: JSON, now: float) -> Reply:
    if call.state != "incoming":
        raise bad_request(f"The call is {call.state}: only an incoming call can be redirected.")
    _require(body, "targets")
    if len(body["targets"]) > 25:
        raise bad_request("At most 25 redirect targets.")
    return Reply(
        202,
        then=call.end(REDIRECTED),
    )


def transfer(call: FakeCall, body: JSON, now: float) -> Reply:
    if call.state != "established":
        raise bad_request(f"The call is {call.state}: only an established call can be transferred.")
    _require(body, "transferTarget")
    call.move("transferring")
    steps = [call.changed()]
    if body.get("transferTarget", {}).get("endpointType") == "fail":  # a target the fake refuses (tests)
        call.move("established")
        steps.append(call.changed(resultInfo=TRANSFER_FAILED))
        return Reply(202, then=steps)
    call.move("transferAccepted")
    steps.append(call.changed())
    return Reply(202, then=[*steps, *call.end(TRANSFERRED)])


def _needs_media(call: FakeCall) -> None:
    if call.state not in ("established", "hold"):
        raise bad_request(f"The call is {call.state}: media operations need an established call.")


def play_prompt(call: FakeCall, body: JSON, now: float) -> Reply:
    _needs_media(call)
    _require(body, "prompts")
    prompts = body["prompts"]
    if not isinstance(prompts, list) or len(prompts) > 20:
        raise bad_request("prompts must be a list of at most 20 media prompts.")
    if not all(
        isinstance(p, dict) and isinstance(p.get("mediaInfo"), dict) and p["mediaInfo"].get("uri") for p in prompts
    ):
        raise bad_request("Each prompt needs mediaInfo.uri.")
    return _start(call, body, "playPrompt", now, {"completionReason": "completedSuccessfully"})


def record_response(call: FakeCall, body: JSON, now: float) -> Reply:
    _needs_media(call)
    recording = f"https://fake-graph.invalid/recordings/{uuid.uuid4()}.wav"
    completion = {
        "completionReason": "stopToneDetected",
        "recordingLocation": recording,
        "recordingAccessToken": "fake-recording-token",
    }
    return _start(call, body, "record", now, completion)


def subscribe_to_tone(call: FakeCall, body: JSON, now: float) -> Reply:
    _needs_media(call)
    return _completed(body, "subscribeToTone")


def send_dtmf_tones(call: FakeCall, body: JSON, now: float) -> Reply:
    """200 with a running operation; its result follows, status completed (call-senddtmftones, v1.0)."""
    _needs_media(call)
    _require(body, "tones")
    return _start(call, body, "sendDtmfTones", now, {"completionReason": "completedSuccessfully"})


def cancel_media_processing(call: FakeCall, body: JSON, now: float) -> Reply:
    """200; each running media operation then fails with 400/8508 (the cancelMediaProcessing page)."""
    _needs_media(call)
    cancelled = [call.finish(op, "failed", CANCELLED) for op in list(call.operations.values())]
    return Reply(200, _operation(body, "cancelMediaProcessing").resource(), then=cancelled)


def keep_alive(call: FakeCall, body: JSON, now: float) -> Reply:
    call.alive_at = now
    return Reply(200)


def _mute(muted: bool) -> Callable[[FakeCall, JSON, float], Reply]:
    def action(call: FakeCall, body: JSON, now: float) -> Reply:
        _needs_media(call)
        call.muted = muted
        for entry in call.participants.values():
            if "application" in entry["info"]["identity"]:
                entry["isMuted"] = muted
        reply = _completed(body, "muteParticipant" if muted else "unmuteParticipant")
        reply.then = [call.roster()] if call.participants else []
        return reply

    return action


def update_recording_status(call: FakeCall, body: JSON, now: float) -> Reply:
    _require(body, "status")
    if body["status"] not in ("notRecording", "recording", "failed"):
        raise bad_request("status must be notRecording, recording or failed.")
    return _completed(body, "updateRecordingStatus")


def invite(call: FakeCall, body: JSON, now: float) -> Reply:
    """200 with the running operation; then its result and the roster with the invited (participant-invite)."""
    _needs_media(call)
    _require(body, "participants")
    invited = body["participants"]
    if not isinstance(invited, list) or not 1 <= len(invited) <= 5:
        raise bad_request("participants must list 1 to 5 invitationParticipantInfo.")
    for info in invited:
        identity = (info or {}).get("identity") or {}
        kind, who = next(((k, v) for k, v in identity.items() if isinstance(v, dict)), ("user", {}))
        entry = participant(str(who.get("displayName") or who.get("id") or "invited"), kind=kind)
        call.participants[entry["id"]] = entry
    reply = _start(call, body, "inviteParticipants", now, {})
    reply.then.append(call.roster())
    return reply


def hang_up(call: FakeCall, now: float) -> Reply:
    """``DELETE`` (the Delete-call page): 204, then ``updated`` terminating and ``deleted`` terminated."""
    call.move("terminating")
    terminating = call.changed()
    return Reply(204, then=[terminating, *call.end(ENDED_BY_BOT)])


#: The POST actions under ``/communications/calls/{id}/``, by the name in the URL.
ACTIONS: dict[str, Callable[[FakeCall, JSON, float], Reply]] = {
    "answer": answer,
    "reject": reject,
    "redirect": redirect,
    "transfer": transfer,
    "playPrompt": play_prompt,
    "recordResponse": record_response,
    "subscribeToTone": subscribe_to_tone,
    "sendDtmfTones": send_dtmf_tones,
    "cancelMediaProcessing": cancel_media_processing,
    "keepAlive": keep_alive,
    "mute": _mute(True),
    "unmute": _mute(False),
    "updateRecordingStatus": update_recording_status,
    "participants/invite": invite,
}
