"""Events as stored in the outbox and in failure records: plain JSON, decoded back into :class:`Event`.

An event's keyword arguments are JSON already, except ``call`` (a :class:`~webhook.model.Call`) and
``notification`` (a :class:`~webhook.model.Notification`). A notification is stored as its document; a call by
its own record only (:meth:`~webhook.model.Call.core_dict`), its history, roster, operations and tones read
from the store when the decoded event's handlers use them, so that an event costs the same on a call of ten
transitions as on one of ten thousand. (Rows written by earlier releases carry the whole call, and still
decode.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .model import COLLECTIONS, Call, Claims, Loader, Notification, StoredCall
from .resources import parse_resource
from .state import Event

#: Reads one collection of a stored call: ``(call_id, name, history_total)``, the history up to that many
#: transitions (a store's :meth:`~webhook.store.CallStore.read_collection`).
CollectionReader = Callable[[str, str, int], object]


def encode_event(event: Event) -> str:
    kwargs: dict[str, Any] = {}
    for key, value in event.kwargs.items():
        if isinstance(value, Call):
            kwargs[key] = {"__call_ref__": value.core_dict()}
        elif isinstance(value, Notification):
            kwargs[key] = {
                "__notification__": {
                    "changeType": value.change_type,
                    "path": value.resource.path,
                    "data": value.data,
                    "raw": value.raw,
                    "claims": asdict(value.claims),
                    "origin": value.origin,
                }
            }
        else:
            kwargs[key] = value
    return json.dumps({"name": event.name, "sender": event.sender, "kwargs": kwargs})


def decode_event(text: str, event_id: int | None = None, *, collections: CollectionReader | None = None) -> Event:
    """The event ``text`` encodes; its call's collections read through ``collections`` when used (without it,
    they are empty)."""
    doc = json.loads(text)
    kwargs: dict[str, Any] = {}
    for key, value in doc["kwargs"].items():
        if isinstance(value, dict) and "__call_ref__" in value:
            core = Call.from_dict(value["__call_ref__"])
            kwargs[key] = StoredCall.of(core, _loader(core, collections))
        elif isinstance(value, dict) and "__call__" in value:
            kwargs[key] = Call.from_dict(value["__call__"])
        elif isinstance(value, dict) and "__notification__" in value:
            stored = value["__notification__"]
            kwargs[key] = Notification(
                change_type=stored["changeType"],
                resource=parse_resource(stored["path"]),
                data=stored["data"],
                raw=stored["raw"],
                claims=Claims(**stored["claims"]),
                origin=stored.get("origin", "graph"),
            )
        else:
            kwargs[key] = value
    return Event(doc["name"], doc["sender"], kwargs, id=event_id)


def _loader(call: Call, collections: CollectionReader | None) -> Loader:
    if collections is None:
        empty: dict[str, Any] = {name: {} if name == "operations" else [] for name in COLLECTIONS}
        return lambda name: empty[name]
    call_id, upto = call.id, call.history_total
    return lambda name: collections(call_id, name, upto)
