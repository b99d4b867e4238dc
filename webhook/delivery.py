"""Handing committed events to their receivers: isolated, timed, deferred when asked, and never lost.

- Each receiver runs isolated (see :class:`~webhook.signals.IsolatedSignal`); one that raises is logged,
  reported on ``handler_failed`` and recorded durably in the store, where ``comms-webhook failures`` lists and
  retries it.
- Handlers registered with ``deferred=True`` run after the response, on a small pool inside the worker; one
  call's events reach them in the order they were committed (one lane per call). The pool drains on shutdown.
- At least once: events with receivers are in the store's outbox, leased to this process, until every receiver
  has run. The sweeper (:mod:`webhook.sweeper`) delivers again the events of processes that died (same host)
  or whose lease expired; :mod:`webhook.failures` runs a recorded failure again.
- Each handler's runs, failures and seconds are counted in the metrics (``comms_webhook_handler_*``); a
  handler slower than ``slow_seconds`` is logged as a warning with its name.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import traceback
import weakref
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import metrics
from .binding import Binder, binding
from .errors import WebhookError
from .events import Event
from .owners import process_owner
from .settings import default
from .signals import SIGNALS, IsolatedSignal, receiver_name
from .store.base import CallStore, Lease

logger = logging.getLogger("webhook.delivery")


class Lanes:
    """Single-threaded lanes: a call always uses the same lane, so its tasks run in submission order."""

    def __init__(self, count: int) -> None:
        self._lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"webhook-deferred-{i}") for i in range(count)]

    def submit(self, key: str, task: Callable[[], None]) -> None:
        self._lanes[zlib.crc32(key.encode()) % len(self._lanes)].submit(task)

    def drain(self) -> None:
        """Wait for every submitted task; new submissions are refused afterwards."""
        for lane in self._lanes:
            lane.shutdown(wait=True)


def _lane_key(event: Event) -> str:
    """The call an event is about: its events share a lane, hence an order."""
    holder = event.kwargs.get("call") or event.kwargs.get("notification")
    return str(getattr(holder, "id", None) or getattr(holder, "call_id", None) or "")


_DELIVERIES: weakref.WeakSet[Delivery] = weakref.WeakSet()


def drain_all() -> None:
    """Drain the deferred handlers of every app in this process (gunicorn's ``worker_exit`` calls this)."""
    for delivery in list(_DELIVERIES):
        delivery.drain()


class Delivery:
    """Delivers committed events for one app (one store)."""

    def __init__(
        self,
        store: CallStore,
        *,
        slow_seconds: float = default("SLOW_HANDLER_SECONDS"),
        deferred_workers: int = default("DEFERRED_WORKERS"),
        lease_seconds: float = default("OUTBOX_LEASE_SECONDS"),
        clock: Callable[[], str],
    ) -> None:
        self.store = store
        self.slow_seconds = slow_seconds
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._lanes: Lanes | None = None
        self._lanes_pid: int | None = None
        self._deferred_workers = deferred_workers
        #: The calls API handlers act through (their ``actions`` argument); set by create_app.
        self.binder: Binder | None = None
        _DELIVERIES.add(self)

    # What the store needs to know

    def needs_delivery(self, event: Event) -> bool:
        """Only events someone listens to go through the outbox (a weakly connected receiver that is gone
        still counts: its event is written, then delivered to nobody)."""
        return SIGNALS[event.name].has_receivers_for(event.sender)

    def lease_until(self) -> float:
        return time.time() + self.lease_seconds

    def lease(self) -> Lease:
        """This process's lease on the events it commits now: those with receivers, for ``lease_seconds``."""
        return Lease(process_owner(), self.lease_until(), self.needs_delivery)

    # Delivering

    def deliver(self, events: Iterable[Event]) -> None:
        """Run the receivers of each event; complete the outbox rows of events fully delivered."""
        done: list[int] = []
        for event in events:
            if self._deliver_one(event) and event.id is not None:
                done.append(event.id)
        self._complete(done)

    def _deliver_one(self, event: Event) -> bool:
        """Run inline receivers now and queue deferred ones; True when nothing is left to run."""
        signal = SIGNALS[event.name]
        receivers = list(signal.receivers_for(event.sender))
        deferred = [r for r in receivers if getattr(r, "deferred", False)]
        for receiver in receivers:
            if receiver not in deferred:
                self.run(signal, receiver, event)
        if not deferred:
            return True
        self._get_lanes().submit(_lane_key(event), lambda: self._run_deferred(signal, deferred, event))
        return False

    def _run_deferred(self, signal: IsolatedSignal, receivers: list[Any], event: Event) -> None:
        for receiver in receivers:
            self.run(signal, receiver, event)
        if event.id is not None:
            self._complete([event.id])

    def run(self, signal: IsolatedSignal, receiver: Callable[..., Any], event: Event, *, record: bool = True) -> str:
        """Run one receiver on one event, timed; return "" or the traceback of its failure (recorded)."""
        started = time.perf_counter()
        with binding(self.binder):  # what a handler's ``actions`` acts through
            _, error = signal.call_receiver(receiver, event.sender, event.kwargs)
        elapsed = time.perf_counter() - started
        name = receiver_name(receiver)
        metrics.child(metrics.handler_calls, name).inc()
        metrics.child(metrics.handler_seconds, name).observe(elapsed)
        if error is not None:
            metrics.child(metrics.handler_failures, name).inc()
        if elapsed > self.slow_seconds:
            logger.warning("handler %s took %.2fs on %s (limit %.2fs)", name, elapsed, signal.name, self.slow_seconds)
        if error is None:
            return ""
        trace = "".join(traceback.format_exception(error))
        if record:
            call = event.kwargs.get("call")
            try:
                self.store.record_failure(
                    getattr(call, "id", None), name, signal.name, event.encode(), trace, self.clock()
                )
            except WebhookError as exc:
                logger.error("could not record the failure of %s: %s", name, exc.message)
        return trace

    def _complete(self, event_ids: list[int]) -> None:
        if not event_ids:
            return
        try:
            self.store.complete(event_ids)
        except WebhookError as exc:
            # The events stay leased; after the lease they are delivered again (handlers are idempotent).
            logger.error("could not complete delivered events %s: %s", event_ids, exc.message)

    def _get_lanes(self) -> Lanes:
        if self._lanes is None or self._lanes_pid != os.getpid():
            self._lanes = Lanes(self._deferred_workers)
            self._lanes_pid = os.getpid()
            atexit.register(self._lanes.drain)
        return self._lanes

    def drain(self) -> None:
        """Wait until every deferred handler queued in this process has run, and remove the outbox rows of what
        was delivered (graceful shutdown)."""
        if self._lanes is not None and self._lanes_pid == os.getpid():
            self._lanes.drain()
            self._lanes = None
        self.store.flush_completed()
