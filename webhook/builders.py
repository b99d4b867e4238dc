"""Builders of Graph-shaped notification bodies, for tests and simulations.

Each builder returns plain JSON data shaped like the examples in Microsoft's docs (``@odata.type`` on every
object, ``resourceUrl`` and the legacy ``resource`` side by side), so a test can say "call X went established"
without hand-writing Graph JSON::

    body = envelope(call_notification(call_id, "established"))
    client.post("/api/calls", json=body)
"""

from __future__ import annotations

import uuid
from typing import Any

JSON = dict[str, Any]
GRAPH = "#microsoft.graph."


def new_id() -> str:
    """A fresh lower-case dashed GUID, like Graph's call and operation ids."""
    return str(uuid.uuid4())


def envelope(*notifications: JSON) -> JSON:
    """A ``commsNotifications`` body holding ``notifications`` as one batch."""
    return {"@odata.type": GRAPH + "commsNotifications", "value": list(notifications)}


def result_info(code: int | str, subcode: int | str, message: str = "") -> JSON:
    return {"@odata.type": GRAPH + "resultInfo", "code": code, "subcode": subcode, "message": message}


def _notification(change_type: str, path: str, resource_data: Any) -> JSON:
    return {
        "@odata.type": GRAPH + "commsNotification",
        "changeType": change_type,
        "resource": "/app/calls/" + path,
        "resourceUrl": "/communications/calls/" + path,
        "resourceData": resource_data,
    }


def call_notification(
    call_id: str,
    state: str | None = None,
    *,
    change_type: str = "updated",
    result: JSON | None = None,
    **fields: Any,
) -> JSON:
    """A notification about the call itself; ``fields`` become ``resourceData`` fields as given."""
    data: JSON = {"@odata.type": GRAPH + "call"}
    if state is not None:
        data["state"] = state
    if result is not None:
        data["resultInfo"] = result
    data.update(fields)
    return _notification(change_type, call_id, data)


def incoming_call(
    call_id: str, *, caller: str = "Alice", caller_id: str | None = None, bot: str = "Contoso bot"
) -> JSON:
    """The ``created`` notification of an incoming peer-to-peer call from the user ``caller`` to the bot."""
    return call_notification(
        call_id,
        "incoming",
        change_type="created",
        direction="incoming",
        callbackUri="https://bot.contoso.com/api/calls",
        source={
            "@odata.type": GRAPH + "participantInfo",
            "identity": {
                "@odata.type": GRAPH + "identitySet",
                "user": {"@odata.type": GRAPH + "identity", "displayName": caller, "id": caller_id or new_id()},
            },
            "region": "westus",
            "languageId": "en-US",
        },
        targets=[
            {
                "@odata.type": GRAPH + "invitationParticipantInfo",
                "identity": {
                    "@odata.type": GRAPH + "identitySet",
                    "application": {"@odata.type": GRAPH + "identity", "displayName": bot, "id": new_id()},
                },
            }
        ],
        requestedModalities=["audio"],
    )


def participant_joining(
    call_id: str, *, joining_call_id: str | None = None, observed: str = "Alice", tenant_id: str | None = None
) -> JSON:
    """A ``participantJoiningNotification`` on the bot's call ``call_id``: the user ``observed``, under a
    recording policy, is about to join the call ``joining_call_id``.

    Microsoft documents the resource (``participantJoiningNotification``: an ``id`` and the joining ``call``) but
    publishes no whole notification; this one carries it as ``resourceData`` of a ``created`` notification, as
    an incoming call's is, the call shaped as in the policy-recording example of "Answer call".
    """
    observed_id = new_id()
    joining: JSON = {
        "@odata.type": GRAPH + "call",
        "id": joining_call_id or new_id(),
        "state": "incoming",
        "direction": "incoming",
        "source": {
            "@odata.type": GRAPH + "participantInfo",
            "id": observed_id,
            "identity": {
                "@odata.type": GRAPH + "identitySet",
                "user": {"@odata.type": GRAPH + "identity", "displayName": observed, "id": new_id()},
            },
        },
        "incomingContext": {
            "@odata.type": GRAPH + "incomingContext",
            "sourceParticipantId": observed_id,
            "observedParticipantId": observed_id,
        },
        "applicationMetadata": {"botData": {"inviteReasons": ["PolicyBasedRecording"]}},
    }
    if tenant_id is not None:
        joining["tenantId"] = tenant_id
    data = {"@odata.type": GRAPH + "participantJoiningNotification", "id": new_id(), "call": joining}
    return _notification("created", call_id, data)


def call_ended(call_id: str, result: JSON | None = None, **fields: Any) -> JSON:
    """The ``deleted`` notification that ends a call (state ``terminated``)."""
    return call_notification(call_id, "terminated", change_type="deleted", result=result, **fields)


def tone_notification(call_id: str, tone: str, sequence_id: int, *, state: str = "established") -> JSON:
    return call_notification(
        call_id, state, toneInfo={"@odata.type": GRAPH + "toneInfo", "sequenceId": sequence_id, "tone": tone}
    )


def participant(
    participant_id: str | None,
    display_name: str,
    *,
    application: bool = False,
    muted: bool = False,
    sequence: int | None = None,
    identity_id: str | None = None,
    kind: str | None = None,
) -> JSON:
    """One roster entry; ``application=True`` makes it a bot's own participant, ``kind`` names any other
    identity (``phone``, ``guest``...)."""
    kind = kind or ("application" if application else "user")
    entry: JSON = {
        "@odata.type": GRAPH + "participant",
        "info": {
            "@odata.type": GRAPH + "participantInfo",
            "identity": {
                "@odata.type": GRAPH + "identitySet",
                kind: {"@odata.type": GRAPH + "identity", "displayName": display_name, "id": identity_id or new_id()},
            },
        },
        "mediaStreams": [
            {
                "@odata.type": GRAPH + "mediaStream",
                "mediaType": "audio",
                "sourceId": "1",
                "direction": "sendReceive",
                "serverMuted": False,
            }
        ],
        "isMuted": muted,
        "isInLobby": False,
        "id": participant_id,
    }
    if sequence is not None:
        entry["rosterSequenceNumber"] = sequence
    return entry


def roster_notification(call_id: str, participants: list[JSON]) -> JSON:
    """A roster update: ``resourceData`` is the array of the call's current participants."""
    return _notification("updated", f"{call_id}/participants", participants)


def delta_roster(call_id: str, sequence: int, participants: list[JSON]) -> JSON:
    """A delta roster (``#microsoft.graph.deltaParticipants``, for a call with ``isDeltaRosterEnabled``): the
    participants changed since roster ``sequence - 1``, one with ``removedState`` having left. Microsoft documents
    the resource (``sequenceNumber``, ``participants``) but publishes no whole notification; this one carries it
    as the ``resourceData`` of the call's participants."""
    data = {"@odata.type": GRAPH + "deltaParticipants", "sequenceNumber": sequence, "participants": participants}
    return _notification("updated", f"{call_id}/participants", data)


def operation_notification(
    call_id: str,
    operation_id: str,
    operation_type: str = "playPrompt",
    *,
    status: str = "completed",
    result: JSON | None = None,
    client_context: str | None = None,
    completion_reason: str | None = None,
) -> JSON:
    """An operation result (``deleted`` on ``.../operations/{id}``), e.g. a playPrompt that finished."""
    data: JSON = {
        "@odata.type": f"{GRAPH}{operation_type}Operation",
        "status": status,
        "clientContext": client_context or new_id(),
        "id": operation_id,
    }
    data["resultInfo"] = result if result is not None else result_info(200, 0, "Action completed successfully.")
    if completion_reason is not None:
        data["completionReason"] = completion_reason
    return _notification("deleted", f"{call_id}/operations/{operation_id}", data)
