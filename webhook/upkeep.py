"""Keeping calls alive, and in step with Graph when its callbacks stop: what the sweeper does through the calls API.

Users' two most common complaints about calling bots are calls dropped after 45 minutes (no ``keepAlive``) and
``terminated`` never arriving (a call "active" forever). Both are answered here, in every worker's sweeper:

- **Managed keep-alive.** Every answered call gets ``POST .../keepAlive`` every ``WEBHOOK_KEEPALIVE_SECONDS``
  (default 900; Graph ends a call after 45 minutes without one, 408/8537). Each is claimed through the store
  (:func:`~webhook.timers.claim_keepalive` in its transaction) before it is sent, so with any number of workers
  and instances exactly one request goes per call per period. A keepAlive that did not reach Graph is given back
  and tried again within a minute; one answered 404 means Graph no longer has the call, which is then ended here.
- **Resync.** A call marked stale (no notification for ``WEBHOOK_STALE_AFTER_SECONDS``), or named by
  ``comms-webhook resync CALL_ID``, is read back from Graph (``GET`` the call and its participants) and the
  answer applied as a notification would be: state and roster refreshed, the stale mark cleared. A call Graph
  answers 404 for is ended here.

A call ended here gets a ``terminated`` transition like any other (``call_state_changed`` with ``end_reason``,
once, through the outbox), its history step marked with the ``origin`` (``keepAlive`` or ``resync``) and its
``resultInfo`` 404/8522, explained as "Graph no longer has the call".

What is learnt from Graph is not journaled: the journal keeps what Graph sent, and replays it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from . import metrics
from .actions import CallActions
from .builders import GRAPH, result_info
from .clock import iso
from .errors import CallGone, GraphError, GraphNotConfigured, PayloadError, WebhookError
from .events import Decision
from .graph import GraphClient
from .model import JSON, Call
from .notification import Claims, Notification
from .parse import load_notifications
from .resources import canonical_id, parse_resource
from .settings import default
from .timers import claim_keepalive, reschedule_keepalive

if TYPE_CHECKING:
    from .delivery import Delivery

logger = logging.getLogger("webhook.upkeep")

#: How soon a keepAlive that failed (Graph unreachable, throttled, 5xx) is tried again, at most.
KEEPALIVE_RETRY_SECONDS = 60.0

Outcome = Literal["refreshed", "ended", "unknown"]


@dataclass(frozen=True)
class Resynced:
    """What a resync found: ``refreshed`` (Graph has the call; ``state`` is ours now), ``ended`` (Graph had
    it no more: ended here), ``unknown`` (already ended here, or known neither here nor by Graph: nothing
    written)."""

    call_id: str
    outcome: Outcome
    state: str | None


#: The Graph client acting on the calls of an app id (None: the receiver's only bot), or None without credentials.
ClientFor = Callable[["str | None"], "GraphClient | None"]


def client_lookup(clients: GraphClient | ClientFor | None) -> ClientFor:
    """``clients`` as a lookup by app id: one client (or none) serves every call."""
    if isinstance(clients, GraphClient) or clients is None:
        return lambda app_id: clients
    return clients


class Upkeep:
    """Keep-alive and resync for the calls of one store, each through the Graph client of its bot (``clients``:
    a :class:`GraphClient` for one bot, or a lookup by app id); events go through ``delivery`` (the outbox, then
    the handlers), as for a notification."""

    def __init__(
        self,
        delivery: Delivery,
        clients: GraphClient | ClientFor,
        *,
        keepalive_seconds: float = default("KEEPALIVE_SECONDS"),
        resync_stale: bool = True,
    ) -> None:
        self.delivery, self.store = delivery, delivery.store
        self.clients = client_lookup(clients)
        self.keepalive_seconds = keepalive_seconds
        self.resync_stale = resync_stale
        self._repairs: ThreadPoolExecutor | None = None
        self._repairs_pid = 0
        self._repairs_lock = threading.Lock()

    def run(self, stale_call_ids: list[str]) -> None:
        """One round, from the sweeper: resync the calls just marked stale, then send the keepAlives due."""
        if self.resync_stale:
            for call_id in stale_call_ids:
                try:
                    self.resync(call_id)
                except WebhookError as exc:
                    metrics.resyncs.labels("failed").inc()
                    logger.warning("could not resync stale call %s: %s", call_id, exc.message)
        self.keep_alive_due()

    # Keep-alive

    def keep_alive_due(self, limit: int = 100) -> int:
        """Send the keepAlives due now (those this process claims); return how many Graph accepted."""
        if self.keepalive_seconds <= 0:
            return 0
        due_before = time.time() - self.keepalive_seconds
        due = iso(due_before)
        sent = 0
        for call_id in self.store.keepalives_due(due_before, limit):
            now_epoch = time.time()  # each keepAlive takes a round trip: the next claim is later
            now = iso(now_epoch)

            def claim(call: Call | None, now: str = now) -> Decision | None:
                return claim_keepalive(call, due, now)

            claimed = self.store.update(call_id, now, claim)
            if claimed is None or claimed.call is None:
                continue  # another process took it, or the call moved on
            sent += self._keep_alive(claimed.call, now, now_epoch)
        return sent

    def _keep_alive(self, call: Call, claimed_at: str, now_epoch: float) -> int:
        call_id, tenant_id = call.id, call.tenant_id
        client = self.clients(call.app_id)
        if client is None:  # a bot of this receiver without credentials: its own client keeps the call alive
            return 0
        if not tenant_id:
            metrics.keepalives.labels("failed").inc()
            logger.error("cannot keep call %s alive: its tenant is unknown (no verified tid, no tenantId)", call_id)
            return 0
        try:
            CallActions(client, call_id, tenant_id).keep_alive()
        except CallGone:
            metrics.keepalives.labels("gone").inc()
            self.end_gone(call_id, "keepAlive", "Graph answered keepAlive with 404: it no longer has the call")
            return 0
        except WebhookError as exc:  # Graph unreachable, throttled, failing; credentials unusable
            metrics.keepalives.labels("failed").inc()
            retry_in = min(KEEPALIVE_RETRY_SECONDS, self.keepalive_seconds / 2)
            last_at = iso(now_epoch - self.keepalive_seconds + retry_in)
            logger.warning("keepAlive of call %s failed (%s): trying again in %.0fs", call_id, exc.message, retry_in)
            self.store.update(call_id, claimed_at, lambda call: reschedule_keepalive(call, claimed_at, last_at))
            return 0
        metrics.keepalives.labels("sent").inc()
        return 1

    # Resync

    def resync(self, call_id: str, *, tenant_id: str | None = None) -> Resynced:
        """Read the call back from Graph and apply what it says; end it here when Graph no longer has it.

        ``tenant_id`` defaults to the call's own (kept from its notifications). Raises
        :class:`~webhook.errors.GraphError` when Graph could not be asked (nothing is changed then), and
        :class:`~webhook.errors.GraphNotConfigured` without credentials or a tenant.
        """
        call_id = canonical_id(call_id)
        known = self.store.get(call_id)
        tenant = tenant_id or (known.tenant_id if known is not None else None)
        if not tenant:
            raise GraphNotConfigured(f"the tenant of call {call_id} is unknown: give it (resync --tenant TENANT_ID)")
        if known is not None and known.ended:
            return Resynced(call_id, "unknown", known.state)
        client = self.clients(known.app_id if known is not None else None)
        if client is None:
            raise GraphNotConfigured(f"the bot of call {call_id} has no Graph credentials to read it back with")
        actions = CallActions(client, call_id, tenant)
        try:
            body = actions.get()
            roster = actions.participants()
        except CallGone:
            if known is None:
                return Resynced(call_id, "unknown", None)  # neither Graph nor we have it: nothing to write
            metrics.resyncs.labels("ended").inc()
            decision = self.end_gone(call_id, "resync", "Graph answered GET with 404: it no longer has the call")
            state = decision.call.state if decision is not None and decision.call is not None else None
            return Resynced(call_id, "ended", state)
        app_id = known.app_id if known is not None else None
        try:
            last = self._apply_read_back(call_id, Claims(tenant_id=tenant, audience=app_id), roster, body)
        except GraphError:
            metrics.resyncs.labels("failed").inc()
            raise
        metrics.resyncs.labels("refreshed").inc()
        state = last.call.state if last is not None and last.call is not None else None
        logger.info("call %s resynced from Graph: %s", call_id, state)
        return Resynced(call_id, "refreshed", state)

    # Repairing a delta roster

    def repair_soon(self, decision: Decision) -> None:
        """Read the call's roster back from Graph, off the request, for a decision that asks (a gap in a delta
        roster: what the missing deltas said is lost). The receiver calls this once the decision is committed."""
        if decision.repair != "roster" or decision.call is None:
            return
        call_id = decision.call.id
        with self._repairs_lock:
            if self._repairs is None or self._repairs_pid != os.getpid():  # a forked worker gets its own
                self._repairs, self._repairs_pid = (
                    ThreadPoolExecutor(1, thread_name_prefix="webhook-roster"),
                    os.getpid(),
                )
            repairs = self._repairs
        repairs.submit(self._repair_logged, call_id)

    def _repair_logged(self, call_id: str) -> None:
        try:
            self.repair_roster(call_id)
        except WebhookError as exc:
            metrics.roster_repairs.labels("failed").inc()
            logger.warning("could not read back the roster of call %s after a delta gap: %s", call_id, exc.message)

    def repair_roster(self, call_id: str) -> Decision | None:
        """``GET`` the call's participants and apply them as a whole roster; None when the call is unknown or
        ended. Raises :class:`~webhook.errors.GraphError` when Graph could not be asked."""
        known = self.store.get(call_id)
        if known is None or known.ended:
            return None
        client = self.clients(known.app_id)
        if client is None or not known.tenant_id:
            raise GraphNotConfigured(f"call {call_id}: its bot's Graph credentials or its tenant are unknown")
        try:
            roster = CallActions(client, call_id, known.tenant_id).participants()
        except CallGone:
            return self.end_gone(
                call_id, "resync", "Graph answered GET participants with 404: it no longer has the call"
            )
        decision = self._apply_read_back(call_id, Claims(tenant_id=known.tenant_id, audience=known.app_id), roster)
        metrics.roster_repairs.labels("repaired").inc()
        logger.info("call %s: roster read back from Graph after a delta gap (%d participants)", call_id, len(roster))
        return decision

    def _apply_read_back(
        self, call_id: str, claims: Claims, roster: list[JSON], call: JSON | None = None
    ) -> Decision | None:
        """Apply what Graph answered ``GET`` (the call, when given, then its participants) as notifications
        learnt by asking (``origin="resync"``); the last decision. Raises :class:`GraphError` when the answer
        cannot be read as Graph's notifications are."""
        resource = f"/communications/calls/{call_id}"
        value: list[JSON] = [
            {"changeType": "updated", "resourceUrl": resource + "/participants", "resourceData": roster}
        ]
        if call is not None:
            value.insert(0, {"changeType": "updated", "resourceUrl": resource, "resourceData": _without_context(call)})
        try:
            notifications = load_notifications({"value": value})
        except PayloadError as exc:
            raise GraphError(f"resync of call {call_id}: Graph's answer could not be read: {exc.message}") from exc
        last = None
        for notification in notifications:
            last = self._apply(replace(notification, origin="resync", claims=claims))
        return last

    # Ending a call Graph no longer has

    def end_gone(self, call_id: str, origin: str, message: str) -> Decision | None:
        """End the call here because Graph no longer has it: ``terminated`` with 404/8522, signalled once."""
        ended = result_info(404, 8522, message)
        data: JSON = {"@odata.type": GRAPH + "call", "state": "terminated", "resultInfo": ended}
        resource = f"/communications/calls/{call_id}"
        raw = {"changeType": "deleted", "resourceUrl": resource, "resourceData": data}
        notification = Notification("deleted", parse_resource(resource), data, raw, origin=origin)
        decision = self._apply(notification)
        if decision.outcome == "applied":
            logger.warning("call %s ended here: %s", call_id, message)
        return decision

    def _apply(self, notification: Notification) -> Decision:
        delivery = self.delivery
        decision = self.store.apply(
            notification,
            delivery.clock(),
            lease=delivery.lease(),
        )
        for event in decision.events:
            if event.name == "call_state_changed":
                metrics.transitions.labels(event.sender).inc()
        delivery.deliver(decision.events)
        return decision


def _without_context(body: JSON) -> JSON:
    """The call as Graph answered GET, without the response's own ``@odata.context``."""
    return {key: value for key, value in body.items() if key != "@odata.context"}
