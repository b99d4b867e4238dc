"""The call store interface.

A store keeps one record per call and makes :func:`webhook.state.decide` atomic: ``apply`` reads the call,
decides, and writes the result in one transaction, so that with any number of processes applying
notifications to the same call, each transition is applied exactly once and its events are returned to exactly
one caller. The caller sends those events after ``apply`` returns (the transaction has committed).
"""

from __future__ import annotations

import abc

from ..model import Call, Notification
from ..state import Decision


class CallStore(abc.ABC):
    """One interface, several engines (``sqlite:///`` today)."""

    #: The URL the store was opened with, with any password masked.
    url: str

    @abc.abstractmethod
    def apply(self, notification: Notification, now: str) -> Decision:
        """Apply one notification atomically at time ``now``; return the committed decision.

        Raises :class:`~webhook.errors.StoreUnavailable` when the store cannot be reached or stays busy past
        its timeout; nothing is written in that case.
        """

    @abc.abstractmethod
    def get(self, call_id: str) -> Call | None:
        """The call with this (canonical) id, or None."""

    @abc.abstractmethod
    def list_calls(self, state: str | None = None, limit: int = 100, *, active: bool = False) -> list[Call]:
        """Calls, most recently updated first; only those in ``state``, or only those not ended (``active``)."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise :class:`~webhook.errors.StoreUnavailable` unless the store answers."""

    def close(self) -> None:  # noqa: B027 - optional for engines without resources
        """Release connections held by this process."""
