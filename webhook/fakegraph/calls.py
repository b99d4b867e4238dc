"""The fake Graph's calls: each call's state as Graph keeps it, its operations, and the notifications a change
of it makes (what each action does to a call is :mod:`webhook.fakegraph.actions`). Nothing here does I/O.
"""

from __future__ import annotations

import time
import uuid
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
    #: The bot the call is for: its notifications are signed for it, and only its token acts on it ("": the
    #: fake's own app).
    app_id: str = ""

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
class RecordedRequest:
    """One request the bot sent: ``action`` is ``answer``, ``playPrompt``..., ``delete``, ``get``, ``token``;
    ``at`` when it arrived (``time.time()``)."""

    method: str
    path: str
    action: str
    call_id: str | None
    headers: dict[str, str]
    body: Any
    status: int = 0
    at: float = field(default_factory=time.time)
