"""The fake Graph's calls: each call's state as Graph keeps it, and what each action answers and sends after.

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
from typing import Any

from .. import builders
from ..builders import GRAPH, JSON, result_info

#: Graph ends an incoming call nobody answered after this long (15 s, Microsoft's "Incoming call" guidance).
ANSWER_DEADLINE_SECONDS = 15.0
#: ... and an established call without a keepAlive for this long (45 minutes, the keepAlive page).
KEEPALIVE_LIMIT_SECONDS = 45 * 60.0

ENDED_BY_BOT = result_info(200, 7000, "Call ended by bot.")
TRANSFERRED = result_info(0, 7015, "Transfer completed.")
TRANSFER_FAILED = result_info(500, 7000, "Transfer failed.")
KEEPALIVE_TIMEOUT = result_info(408, 8537, "Keep Alive timeout")
# Undocumented: what an unanswered incoming call ends with. The Delete-call page lists 408/1106 ("call acceptance
# not acknowledged in time"), which is what bots report seeing.
NOT_ANSWERED = result_info(408, 1106, "Call acceptance not acknowledged in time.")
SUCCEEDED = result_info(200, 0, "Action completed.")
CANCELLED = result_info(400, 8508, "Action failed, the operation was cancelled.")
ENDED_BY_OTHER = result_info(200, 4097, "Call ended by other participant.")
REDIRECTED = result_info(0, 0, "Call redirected.")


class GraphError(Exception):
    """What Graph answers a request it refuses: ``status`` and its error body ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def call_gone(call_id: str) -> GraphError:
    return GraphError(404, "8522", f"Call not found: the call {call_id} has ended or never existed.")


def bad_request(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


@dataclass
class Operation:
    """A long-running operation (playPrompt, record, invite...): running until ``due`` (on the fake's clock),
    then completed with ``completion`` fields, unless cancelled first."""

    id: str
    type: str  # "playPrompt", "record", "inviteParticipants"...
    client_context: str | None
    status: str = "running"
    due: float = 0.0
    completion: JSON = field(default_factory=dict)

    def resource(self, result: JSON | None = None, **fields: Any) -> JSON:
        doc: JSON = {"@odata.type": f"{GRAPH}{self.type}Operation", "id": self.id, "status": self.status}
        if self.client_context is not None:
            doc["clientContext"] = self.client_context
        if result is not None:
            doc["resultInfo"] = result
        return {**doc, **fields}


@dataclass
class FakeCall:
    """One call as Graph sees it. ``history`` lists the states it went through."""

    id: str
    tenant_id: str
    direction: str
    state: str
    callback_uri: str
    created_at: float
    source: JSON = field(default_factory=dict)
    targets: list[JSON] = field(default_factory=list)
    participants: dict[str, JSON] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    meeting_info: JSON | None = None
    muted: bool = False
    alive_at: float | None = None  # when it was established or last kept alive
    tones_sent: int = 0
    #: How long each kind of operation runs on the fake's clock before its result is sent (0: at once).
    operation_seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.history.append(self.state)

    @property
    def ended(self) -> bool:
        return self.state == "terminated"

    @property
    def url(self) -> str:
        return f"/communications/calls/{self.id}"

    def move(self, state: str) -> None:
        self.state = state
        self.history.append(state)

    def resource(self, **extra: Any) -> JSON:
        """The call as ``GET`` returns it and as its notifications carry it."""
        doc: JSON = {
            "@odata.type": GRAPH + "call",
            "state": self.state,
            "direction": self.direction,
            "callbackUri": self.callback_uri,
            "tenantId": self.tenant_id,
            "source": self.source,
            "targets": self.targets,
        }
        if self.meeting_info is not None:
            doc["meetingInfo"] = self.meeting_info
        return {**doc, **extra}

    # The notifications Graph sends about this call

    def changed(self, change_type: str = "updated", **extra: Any) -> JSON:
        return {"changeType": change_type, "resourceUrl": self.url, "resourceData": self.resource(**extra)}

    def roster(self) -> JSON:
        return {
            "changeType": "updated",
            "resourceUrl": f"{self.url}/participants",
            "resourceData": list(self.participants.values()),
        }

    def finish(self, operation: Operation, status: str, result: JSON, **fields: Any) -> JSON:
        """The operation's result notification (``deleted`` on ``.../operations/{id}``); it stops running."""
        operation.status = status
        self.operations.pop(operation.id, None)
        return {
            "changeType": "deleted",
            "resourceUrl": f"{self.url}/operations/{operation.id}",
            "resourceData": operation.resource(result, **fields),
        }

    def due_operations(self, now: float) -> list[JSON]:
        """The results of the operations whose time has come, in the order they were started."""
        due = [op for op in self.operations.values() if op.due <= now]
        return [self.finish(op, "completed", SUCCEEDED, **op.completion) for op in due]

    def end(self, result: JSON) -> list[JSON]:
        """``deleted`` with state terminated: nothing comes back from it."""
        self.move("terminated")
        self.alive_at = None
        return [self.changed("deleted", resultInfo=result)]


def participant(name: str, *, kind: str = "user", muted: bool = False) -> JSON:
    """A roster entry as Graph sends it (``isMuted``, ``mediaStreams``, the identity of ``kind``)."""
    return builders.participant(str(uuid.uuid4()), name, kind=kind, muted=muted)


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
