"""Handing committed events to their receivers: isolated, timed, deferred when asked, and never lost.

- Each receiver runs isolated (see :class:`~webhook.signals.IsolatedSignal`); one that raises is logged,
  reported on ``handler_failed`` and recorded durably in the store, where ``comms-webhook failures`` lists and
  retries it.
- Handlers registered with ``deferred=True`` run after the response, on a small pool inside the worker; one
  call's events reach them in the order they were committed (one lane per call). The pool drains on shutdown.
- At least once: events with receivers are in the store's outbox, leased to this process, until every receiver
  has run. A sweeper claims the events of processes that died (same host) or whose lease expired, at start-up
  and every ``sweep_seconds``, and delivers them again.
- Per-handler figures (calls, failures, seconds) are kept in :attr:`Delivery.stats`; a handler slower than
  ``slow_seconds`` is logged as a warning with its name.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import traceback
import uuid
import weakref
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import metrics
from .actions import Binder, binding
from .errors import HandlerNotLoaded, WebhookError
from .model import Failure
from .outbox import decode_event, encode_event
from .settings import default
from .signals import SIGNALS, IsolatedSignal, receiver_name
from .state import Event
from .store.base import CallStore, Lease

if TYPE_CHECKING:
    from .upkeep import Upkeep

logger = logging.getLogger("webhook.delivery")


@dataclass
class HandlerStats:
    calls: int = 0
    failures: int = 0
    seconds: float = 0.0
    slowest: float = 0.0


_HOST = socket.gethostname()
_TOKEN = uuid.uuid4().hex[:8]


def _boot_id() -> str:
    """This boot of the machine (Linux), so that start times of two boots are never compared."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    except OSError:
        return ""


_BOOT = _boot_id()


def _started(pid: int) -> str:
    """When process ``pid`` started (boot and clock ticks since boot, from /proc); "" where unknown.

    A pid names one process at a time but is reused after it exits: after a restart, an old worker's pid is
    usually taken by a new worker, a thread or another program. Its start time tells the processes apart.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{_BOOT}.{stat.rsplit(')', 1)[1].split()[19]}"  # field 22, starttime; the name may hold spaces


_OWNER: tuple[int, str] | None = None


def process_owner() -> str:
    """This process as an outbox owner: ``host:pid:start:token``; the pid changes after a fork, and the start
    time tells this process from an earlier one that had the same pid."""
    global _OWNER
    pid = os.getpid()
    if _OWNER is None or _OWNER[0] != pid:
        _OWNER = (pid, f"{_HOST}:{pid}:{_started(pid)}:{_TOKEN}")
    return _OWNER[1]


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` was a process on this host that no longer runs (its pid is free, or names a process
    that started at another time). Owners on other hosts: see the lease."""
    host, pid_text, *rest = owner.split(":")
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner != process_owner()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    started = rest[0] if len(rest) == 2 else ""  # owners written before start times were recorded have none
    return bool(started) and _started(pid) not in ("", started)


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
        sweep_seconds: float = default("OUTBOX_SWEEP_SECONDS"),
        stale_after_seconds: float = default("STALE_AFTER_SECONDS"),
        clock: Callable[[], str],
    ) -> None:
        self.store = store
        self.slow_seconds = slow_seconds
        self.lease_seconds = lease_seconds
        self.sweep_seconds = sweep_seconds
        self.stale_after_seconds = stale_after_seconds
        self.clock = clock
        self.stats: dict[str, HandlerStats] = {}
        self._stats_lock = threading.Lock()
        self._lanes: Lanes | None = None
        self._lanes_pid: int | None = None
        self._deferred_workers = deferred_workers
        self._sweeper_pid: int | None = None
        #: The calls API handlers act through (their ``actions`` argument); set by create_app.
        self.binder: Binder | None = None
        #: Keep-alive and resync through Graph, run by the sweeper; set by create_app when Graph is configured.
        self.upkeep: Upkeep | None = None
        _DELIVERIES.add(self)

    # What the store needs to know

    def needs_delivery(self, event: Event) -> bool:
        """Only events someone listens to go through the outbox."""
        return any(True for _ in SIGNALS[event.name].receivers_for(event.sender))

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
        metrics.handler_calls.labels(name).inc()
        metrics.handler_seconds.labels(name).observe(elapsed)
        if error is not None:
            metrics.handler_failures.labels(name).inc()
        with self._stats_lock:
            stats = self.stats.setdefault(name, HandlerStats())
            stats.calls += 1
            stats.seconds += elapsed
            stats.slowest = max(stats.slowest, elapsed)
            if error is not None:
                stats.failures += 1
        if elapsed > self.slow_seconds:
            logger.warning("handler %s took %.2fs on %s (limit %.2fs)", name, elapsed, signal.name, self.slow_seconds)
        if error is None:
            return ""
        trace = "".join(traceback.format_exception(error))
        if record:
            call = event.kwargs.get("call")
            try:
                self.store.record_failure(
                    getattr(call, "id", None), name, signal.name, encode_event(event), trace, self.clock()
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

    # Recovering

    def recover(self) -> int:
        """Claim and deliver the events of dead processes and expired leases; return how many."""
        events = self.store.claim_orphans(process_owner(), time.time(), self.lease_until(), owner_is_dead)
        if events:
            logger.warning("delivering %d event(s) left undelivered by a process that stopped", len(events))
            self.deliver(events)
        return len(events)

    def mark_stale_calls(self) -> list[str]:
        """Mark active calls quiet for ``stale_after_seconds`` as stale and deliver ``call_stale``; return the
        ids of the calls this process marked.

        Every worker of every instance may sweep: the store lets one of them mark each call.
        """
        seen_before = time.time() - self.stale_after_seconds
        marked: list[str] = []
        for call_id in self.store.quiet_calls(seen_before):
            decision = self.store.mark_stale(
                call_id,
                seen_before,
                self.clock(),
                lease=self.lease(),
            )
            if decision is not None:
                marked.append(call_id)
                metrics.stale_marked.inc()
                logger.warning("call %s had no notification for %gs: marked stale", call_id, self.stale_after_seconds)
                self.deliver(decision.events)
        return marked

    def sweep(self) -> None:
        """One round: undelivered events of stopped processes, calls gone quiet, then (with :attr:`upkeep`)
        those calls read back from Graph and the keepAlives due."""
        self.recover()
        stale = self.mark_stale_calls()
        if self.upkeep is not None:
            self.upkeep.run(stale)

    def start_sweeper(self) -> None:
        """Sweep now, then every ``sweep_seconds``, in a daemon thread of this process (0 disables it)."""
        if self.sweep_seconds <= 0 or self._sweeper_pid == os.getpid():
            return
        self._sweeper_pid = os.getpid()
        reference = weakref.ref(self)

        def sweep() -> None:
            while True:
                delivery = reference()
                if delivery is None:
                    return
                try:
                    delivery.sweep()
                except WebhookError as exc:
                    logger.error("sweep failed: %s", exc.message)
                except Exception:  # a bug here must not end the sweeps of this worker for good
                    logger.exception("sweep failed")
                interval = delivery.sweep_seconds
                del delivery
                time.sleep(interval)

        threading.Thread(target=sweep, name="webhook-outbox-sweeper", daemon=True).start()

    # Failures

    def retry(self, failure: Failure) -> str:
        """Run the failed handler again on its event; return "" on success or the new traceback.

        Raises :class:`~webhook.errors.HandlerNotLoaded`, counting no attempt, when no loaded plugin connected
        that handler.
        """
        event = decode_event(failure.event, collections=self.store.read_collection)
        signal = SIGNALS[failure.signal]
        receiver = next((r for r in signal.receivers_for(event.sender) if receiver_name(r) == failure.handler), None)
        if receiver is None:
            raise HandlerNotLoaded(
                f"handler {failure.handler} is not connected to {failure.signal}: load its plugin "
                "(WEBHOOK_PLUGINS, or install it) and retry; no attempt was counted"
            )
        error = self.run(signal, receiver, event, record=False)
        self.store.update_failure(failure.id, resolved=not error, error=error or None, now=self.clock())
        return error
