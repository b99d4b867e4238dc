"""Faults a test injects into the fake Graph: answers it refuses (any status, ``Retry-After``), connections it
drops after acting, and notifications dropped, duplicated, reordered, delayed or never sent."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .calls import GraphError
from .notifier import Notifier
from .server import STATUS_CODES


@dataclass
class InjectedFailure:
    status: int
    retry_after: float | None
    count: int
    message: str = "Injected by the test."


class Faults:
    """The faults of :class:`~webhook.fakegraph.FakeGraph` (a part of it)."""

    # Kept by FakeGraph, which this is a part of.
    _lock: threading.RLock
    _failures: dict[str, InjectedFailure]
    notifier: Notifier

    def fail_next(
        self,
        action: str,
        status: int,
        *,
        retry_after: float | None = None,
        count: int = 1,
        message: str = "Injected by the test.",
    ) -> None:
        """Answer the next ``count`` requests of ``action`` (``answer``, ``playPrompt``, ``delete``, ``get``,
        ``token``...) with ``status`` and Graph's error body carrying ``message``, processing nothing (with
        ``Retry-After`` when given). A 3xx status redirects to the same URL (``Location``), as a region does."""
        with self._lock:
            self._failures[action] = InjectedFailure(status, retry_after, count, message)

    def drop_connection_next(self, action: str) -> None:
        """Process the next request of ``action``, then close the connection without answering: the client
        cannot know whether Graph acted (it did)."""
        with self._lock:
            self._failures[action] = InjectedFailure(0, None, 1, "")

    def drop_next(self, count: int = 1) -> None:
        """The next ``count`` notifications are never sent."""
        self.notifier.faults.drop += count

    def duplicate_next(self, count: int = 1) -> None:
        """The next ``count`` notifications are each sent twice."""
        self.notifier.faults.duplicate += count

    def reorder_next(self) -> None:
        """The next notification is overtaken by the one after it."""
        self.notifier.faults.reorder += 1

    def delay_notifications(self, seconds: float) -> None:
        """Every notification from now on waits ``seconds`` before it is sent (0 stops)."""
        self.notifier.faults.delay_seconds = seconds

    def never_send_terminated(self, on: bool = True) -> None:
        """Calls that end say nothing more: their ``deleted`` notification is never sent (users' most common
        complaint about Graph)."""
        self.notifier.faults.never_terminated = on

    def _injected(self, action: str) -> GraphError | None:
        with self._lock:
            failure = self._failures.get(action)
            if failure is None:
                return None
            failure.count -= 1
            if failure.count <= 0:
                del self._failures[action]
        headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
        return GraphError(failure.status, STATUS_CODES.get(failure.status, "Error"), failure.message, headers)
