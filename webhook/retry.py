"""Failure retry: a handler that raised is recorded with its event (``comms-webhook failures``); retrying runs
that handler again on that event, and resolves the failure when it succeeds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import HandlerNotLoaded
from .events import Event
from .model import Failure
from .signals import SIGNALS, receiver_name

if TYPE_CHECKING:
    from .delivery import Delivery


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
