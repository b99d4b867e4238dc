"""The sweeper: what each worker does in the background, every ``OUTBOX_SWEEP_SECONDS``.

One round delivers the events that stopped processes left undelivered (their leases expired or their owner
is gone), marks active calls that went quiet for ``STALE_AFTER_SECONDS`` as stale (``call_stale``), and, when
Graph is configured, reads those calls back and sends the keepAlives due (:mod:`webhook.upkeep`). Every worker
of every instance may sweep: the store lets one of them claim each event and mark each call.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

from . import metrics
from .errors import WebhookError
from .owners import owner_is_dead, process_owner
from .settings import default

if TYPE_CHECKING:
    from .delivery import Delivery
    from .upkeep import Upkeep

logger = logging.getLogger("webhook.delivery")  # what it logs is delivery's, as operators filter it


class Sweeper:
    """The background rounds of one app in one process."""

    def __init__(
        self,
        delivery: Delivery,
        *,
        sweep_seconds: float = default("OUTBOX_SWEEP_SECONDS"),
        stale_after_seconds: float = default("STALE_AFTER_SECONDS"),
        upkeep: Upkeep | None = None,
    ) -> None:
        self.delivery, self.store = delivery, delivery.store
        self.sweep_seconds = sweep_seconds
        self.stale_after_seconds = stale_after_seconds
        #: Keep-alive and resync through Graph; None when Graph is not configured.
        self.upkeep = upkeep
        self._started_in: int | None = None

    def recover(self) -> int:
        """Claim and deliver the events of dead processes and expired leases; return how many."""
        delivery = self.delivery
        events = self.store.claim_orphans(process_owner(), time.time(), delivery.lease_until(), owner_is_dead)
        if events:
            logger.warning("delivering %d event(s) left undelivered by a process that stopped", len(events))
            delivery.deliver(events)
        return len(events)

    def mark_stale_calls(self) -> list[str]:
        """Mark active calls quiet for ``stale_after_seconds`` as stale and deliver ``call_stale``; return the
        ids of the calls this process marked."""
        seen_before = time.time() - self.stale_after_seconds
        marked: list[str] = []
        for call_id in self.store.quiet_calls(seen_before):
            decision = self.store.mark_stale(call_id, seen_before, self.delivery.clock(), lease=self.delivery.lease())
            if decision is not None:
                marked.append(call_id)
                metrics.stale_marked.inc()
                logger.warning("call %s had no notification for %gs: marked stale", call_id, self.stale_after_seconds)
                self.delivery.deliver(decision.events)
        return marked

    def sweep(self) -> None:
        """One round: undelivered events of stopped processes, calls gone quiet, then (with :attr:`upkeep`)
        those calls read back from Graph and the keepAlives due."""
        self.recover()
        stale = self.mark_stale_calls()
        if self.upkeep is not None:
            self.upkeep.run(stale)

    def start(self) -> None:
        """Sweep now, then every ``sweep_seconds``, in a daemon thread of this process (0: never). The thread
        holds the sweeper weakly: an app that is gone stops being swept."""
        if self.sweep_seconds <= 0 or self._started_in == os.getpid():
            return
        self._started_in = os.getpid()
        reference = weakref.ref(self)

        def sweep() -> None:
            while True:
                sweeper = reference()
                if sweeper is None:
                    return
                try:
                    sweeper.sweep()
                except WebhookError as exc:
                    logger.error("sweep failed: %s", exc.message)
                except Exception:  # a bug here must not end the sweeps of this worker for good
                    logger.exception("sweep failed")
                interval = sweeper.sweep_seconds
                del sweeper
                time.sleep(interval)

        threading.Thread(target=sweep, name="webhook-outbox-sweeper", daemon=True).start()
