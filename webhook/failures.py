"""Failures: a handler that raised is recorded with its event (:class:`Failure`, listed by ``comms-webhook
failures``); retrying runs that handler again on that event, and resolves the failure when it succeeds."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from . import codec
from .errors import HandlerNotLoaded
from .events import Event
from .model import JSON
from .signals import SIGNALS, receiver_name

if TYPE_CHECKING:
    from .delivery import Delivery


@dataclass(frozen=True)
class Failure:
    """A handler that raised on an event, kept until a retry succeeds (``comms-webhook failures``)."""

    id: int
    call_id: str | None
    handler: str
    signal: str
    event: str  # the event, as Event.encode() wrote it
    error: str  # the traceback of the last attempt
    attempts: int
    status: str  # "pending" or "resolved"
    first_at: str
    last_at: str

    def to_dict(self) -> JSON:
        """What the CLI and the read API show: every field but the event, by its JSON name."""
        return {name: getattr(self, field) for field, name in _JSON_NAMES.items() if field != "event"}

    def to_json(self) -> str:
        """The whole failure, its event included, as JSON text; :meth:`from_json` reads it back."""
        return codec.dumps({name: getattr(self, field) for field, name in _JSON_NAMES.items()})

    @classmethod
    def from_json(cls, text: str | bytes) -> Failure:
        doc = codec.loads(text)
        return cls(**{field: doc[name] for field, name in _JSON_NAMES.items()})


#: Each field of :class:`Failure` and its name in JSON (the field's own, but for these), in the fields' order.
_JSON_NAMES = {
    each.name: {"call_id": "callId", "first_at": "firstAt", "last_at": "lastAt"}.get(each.name, each.name)
    for each in fields(Failure)
}


def retry_failure(delivery: Delivery, failure: Failure) -> str:
    """Run the failed handler again on its event; return "" on success or the new traceback (both recorded on
    the failure, whose attempts are counted).

    Raises :class:`~webhook.errors.HandlerNotLoaded`, counting no attempt, when no loaded plugin connected
    that handler.
    """
    store = delivery.store
    event = Event.decode(failure.event, collections=store.read_collection)
    signal = SIGNALS[failure.signal]
    receiver = next((r for r in signal.receivers_for(event.sender) if receiver_name(r) == failure.handler), None)
    if receiver is None:
        raise HandlerNotLoaded(
            f"handler {failure.handler} is not connected to {failure.signal}: load its plugin "
            "(WEBHOOK_PLUGINS, or install it) and retry; no attempt was counted"
        )
    error = delivery.run(signal, receiver, event, record=False)
    store.update_failure(failure.id, resolved=not error, error=error or None, now=delivery.clock())
    return error
