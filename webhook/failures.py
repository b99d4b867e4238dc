"""Failures: a handler that raised is recorded with its event (:class:`Failure`, listed by ``comms-webhook
failures``); retrying runs that handler again on that event, and resolves the failure when it succeeds."""

from __future__ import annotations

from dataclasses import dataclass
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
        return {
            "id": self.id,
            "callId": self.call_id,
            "handler": self.handler,
            "signal": self.signal,
            "error": self.error,
            "attempts": self.attempts,
            "status": self.status,
            "firstAt": self.first_at,
            "lastAt": self.last_at,
        }

    def to_json(self) -> str:
        """The whole failure, its event included, as JSON text; :meth:`from_json` reads it back."""
        return codec.dumps({**self.to_dict(), "event": self.event})

    @classmethod
    def from_json(cls, text: str | bytes) -> Failure:
        doc = codec.loads(text)
        return cls(
            id=doc["id"],
            call_id=doc["callId"],
            handler=doc["handler"],
            signal=doc["signal"],
            event=doc["event"],
            error=doc["error"],
            attempts=doc["attempts"],
            status=doc["status"],
            first_at=doc["firstAt"],
            last_at=doc["lastAt"],
        )


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
