"""Sending the events a committed decision produced, each receiver isolated from the others."""

from __future__ import annotations

from collections.abc import Iterable

from .signals import SIGNALS
from .state import Event


def dispatch(events: Iterable[Event]) -> None:
    """Send each event on its signal, in order. Call only after the store committed the decision.

    A receiver that raises is logged and reported through ``handler_failed`` by the signal itself; the other
    receivers and the remaining events still run.
    """
    for event in events:
        SIGNALS[event.name].send(event.sender, **event.kwargs)
