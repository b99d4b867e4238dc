"""Events as stored in the outbox and in failure records: plain JSON, decoded back into :class:`Event`.

An event's keyword arguments are JSON already, except ``call`` (a :class:`~webhook.model.Call`) and
``notification`` (a :class:`~webhook.model.Notification`). A notification is stored as its document; a call by
its own record only (:meth:`~webhook.model.Call.core_dict`), its history, roster, operations and tones read
from the store when the decoded event's handlers use them, so that an event costs the same on a call of ten
transitions as on one of ten thousand. (Rows written by earlier releases carry the whole call, and still
decode.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import codec
from .model import COLLECTIONS, Call, Claims, Loader, Notification, StoredCall
from .resources import parse_resource
from .state import Event

#: Reads one collection of a stored call: ``(call_id, name, history_total)``, the history up to that many
#: transitions (a store's :meth:`~webhook.store.CallStore.read_collection`).
CollectionReader = Callable[[str, str, int], object]


def encode_event(event: Event) -> str:
    kwargs: dict[str, Any] = {}
    call = event.kwargs.get("call")
    roster = call.participants if isinstance(call, Call) and not isinstance(call, StoredCall) else None
    for key, value in event.kwargs.items():
        if value is roster and roster is not None:
            kwargs[key] = {"__roster_ref__": True}  # the call's own roster: read back with it, not written twice
        elif isinstance(value, Call):
            kwargs[key] = {"__call_ref__": value.core_dict()}
        elif isinstance(value, Notification):
            kwargs[key] = {
                "__notification__": {
                    "changeType": value.change_type,
                    "path": value.resource.path,
                    "data": _RAW if _data_is_raw(value) else value.data,
                    "raw": value.raw,
                    "claims": value.claims.to_dict(),
                    "origin": value.origin,
                }
            }
        else:
            kwargs[key] = value
    return codec.dumps({"name": event.name, "sender": event.sender, "kwargs": kwargs})


def decode_event(text: str, event_id: int | None = None, *, collections: CollectionReader | None = None) -> Event:
    """The event ``text`` encodes; its call's collections read through ``collections`` when used (without it,
    they are empty)."""
    doc = codec.loads(text)
    kwargs: dict[str, Any] = {}
    for key, value in doc["kwargs"].items():
        if isinstance(value, dict) and "__roster_ref__" in value:
            continue  # the call's roster: set below, once the call is decoded
        if isinstance(value, dict) and "__call_ref__" in value:
            core = Call.from_dict(value["__call_ref__"])
            kwargs[key] = StoredCall.of(core, _loader(core, collections))
        elif isinstance(value, dict) and "__call__" in value:
            kwargs[key] = Call.from_dict(value["__call__"])
        elif isinstance(value, dict) and "__notification__" in value:
            stored = value["__notification__"]
            data = stored["data"]
            kwargs[key] = Notification(
                change_type=stored["changeType"],
                resource=parse_resource(stored["path"]),
                data=list(stored["raw"].get("resourceData") or []) if data == _RAW else data,
                raw=stored["raw"],
                claims=Claims(**stored["claims"]),
                origin=stored.get("origin", "graph"),
            )
        else:
            kwargs[key] = value
    for key, value in doc["kwargs"].items():
        if isinstance(value, dict) and "__roster_ref__" in value and isinstance(kwargs.get("call"), Call):
            kwargs[key] = kwargs["call"].participants
    return Event(doc["name"], doc["sender"], kwargs, id=event_id)


def _loader(call: Call, collections: CollectionReader | None) -> Loader:
    if collections is None:
        empty: dict[str, Any] = {name: {} if name == "operations" else [] for name in COLLECTIONS}
        return lambda name: empty[name]
    call_id, upto = call.id, call.history_total
    return lambda name: collections(call_id, name, upto)


#: Stands for a roster notification's data when it is its raw ``resourceData`` entry for entry.
_RAW = {"__raw_resource_data__": True}


def _data_is_raw(notification: Notification) -> bool:
    """True when the notification's data is its raw roster, the very entries (a roster as Graph sends it is
    not rewritten by validation: see :func:`webhook.schemas.plain_roster`), so it is written once, not twice."""
    data, raw = notification.data, notification.raw.get("resourceData")
    return (
        isinstance(data, list)
        and isinstance(raw, list)
        and len(data) == len(raw)
        and all(entry is sent for entry, sent in zip(data, raw, strict=True))
    )
