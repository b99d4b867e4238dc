"""Events as stored in the outbox and in failure records: plain JSON, decoded back into :class:`Event`.

An event's keyword arguments are JSON already, except ``call`` (a :class:`~webhook.model.Call`) and
``notification`` (a :class:`~webhook.model.Notification`), which are stored as their documents.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .model import Call, Claims, Notification
from .resources import parse_resource
from .state import Event


def encode_event(event: Event) -> str:
    kwargs: dict[str, Any] = {}
    for key, value in event.kwargs.items():
        if isinstance(value, Call):
            kwargs[key] = {"__call__": value.to_dict()}
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


def decode_event(text: str, event_id: int | None = None) -> Event:
    doc = json.loads(text)
    kwargs: dict[str, Any] = {}
    for key, value in doc["kwargs"].items():
        if isinstance(value, dict) and "__call__" in value:
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
