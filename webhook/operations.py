"""Operation results: what an ``operation`` notification (playPrompt, recordResponse, subscribeToTone...) does
to its call, and whether an operation really succeeded. Pure, as :mod:`webhook.state`, which hands them here."""

from __future__ import annotations

from .codes import as_int
from .events import Decision, Event
from .model import JSON, Call
from .notification import Notification

_TERMINAL_OPERATION_STATUSES = {"completed", "failed"}


def operation_type(data: JSON) -> str:
    """``#microsoft.graph.playPromptOperation`` -> ``playPrompt``; ``unknown`` when the type says nothing."""
    odata_type = data.get("@odata.type")
    if not isinstance(odata_type, str):
        return "unknown"
    name = odata_type.rsplit(".", 1)[-1].lstrip("#")
    if name.endswith("Operation"):
        name = name[: -len("Operation")]
    return name if name and name != "comms" else "unknown"


def operation_id(notification: Notification, data: JSON) -> str:
    return str(notification.resource.sub_id or data.get("id") or "unknown")


def decide_operation(call: Call, notification: Notification, now: str) -> Decision:
    data: JSON = notification.data
    op_id = operation_id(notification, data)
    status = data.get("status")
    if notification.change_type == "deleted" and not status:
        status = "completed"
    record = {
        "id": op_id,
        "type": operation_type(data),
        "status": status,
        "completionReason": data.get("completionReason"),
        "resultInfo": data.get("resultInfo"),
        "clientContext": data.get("clientContext"),
    }
    known = call.operations.get(op_id)
    if known is not None:
        if all(known.get(key) == value for key, value in record.items()):
            return Decision("duplicate", call)
        if known.get("status") in _TERMINAL_OPERATION_STATUSES and status not in _TERMINAL_OPERATION_STATUSES:
            return Decision("stale", call, reason=f"operation {op_id} {status} after {known.get('status')}")
    call.operations[op_id] = {**record, "at": now}
    events: tuple[Event, ...] = ()
    if status in _TERMINAL_OPERATION_STATUSES:
        kwargs = {
            "call": call,
            "operation": call.operations[op_id],
            "notification": notification,
            "status": status,
            "completion_reason": record["completionReason"],
            "result_info": record["resultInfo"],
            "client_context": record["clientContext"],
            "succeeded": operation_succeeded(record),
        }
        events = (Event("operation_completed", record["type"], kwargs),)
    return Decision("updated", call, events)


#: completionReason values that mean the operation did not do its job, whatever ``status`` says
#: (sendDtmfTones reports ``completed`` when it was cancelled).
FAILED_COMPLETION_REASONS = frozenset(
    reason.lower()
    for reason in (
        "mediaOperationCanceled",
        "operationCanceled",
        "unknown",
        "unspecifiedError",
        "playPromptFailed",
        "playBeepFailed",
        "mediaReceiveTimeout",
        "initialSilenceTimeout",
    )
)


def operation_succeeded(operation: JSON) -> bool:
    """True when an operation result really succeeded: completed, no failure reason, no failure code."""
    if operation.get("status") != "completed":
        return False
    reason = operation.get("completionReason")
    if isinstance(reason, str) and reason.lower() in FAILED_COMPLETION_REASONS:
        return False
    return not result_failed(operation)


def result_failed(data: JSON) -> bool:
    """Whether ``data``'s ``resultInfo`` says it failed: a code of 400 or more (Graph's HTTP-like classes)."""
    result = data.get("resultInfo")
    code = as_int(result.get("code")) if isinstance(result, dict) else None
    return code is not None and code >= 400
