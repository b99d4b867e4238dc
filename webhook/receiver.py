"""The receiving pipeline without Flask: bytes in, committed decisions and sent signals out.

:class:`Receiver` is what ``POST /api/calls`` runs after the HTTP checks, and what replays and tests can run
directly. A body is validated whole before anything happens: a rejected body changes no state and sends no
signal.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import codec, logs, metrics
from .clock import utc_now
from .delivery import Delivery
from .errors import PayloadError
from .events import Decision, Event
from .joining import JoinDecider, JoinResponse
from .notification import Claims, Notification
from .parse import load_notifications
from .routing import Redirect, route
from .settings import default
from .signals import SIGNALS
from .state import is_joining_notification
from .store.base import CallStore

if TYPE_CHECKING:
    from .answer_guard import AnswerGuard

transitions_log = logging.getLogger("webhook.transitions")
logger = logging.getLogger("webhook.receiver")

#: Deepest nesting of JSON accepted. Graph's bodies nest about 8 levels; the cap keeps a hostile body from
#: exhausting the recursion limit anywhere downstream.
MAX_JSON_DEPTH = 64
#: The most notifications one body may carry (WEBHOOK_MAX_NOTIFICATIONS_PER_BODY).
MAX_NOTIFICATIONS_PER_BODY: int = default("MAX_NOTIFICATIONS_PER_BODY")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e999 is valid JSON but a Python infinity, which every later output would write as the invalid Infinity.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large to be a number")
    return value


def _strict_json(raw: bytes | str) -> Any:
    return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)


def decode_body(raw: bytes) -> Any:
    """Decode a request body as strict JSON (UTF-8, no NaN/Infinity nor numbers beyond a double, at most
    :data:`MAX_JSON_DEPTH` deep).

    Raises :class:`PayloadError` with code ``malformed_json`` and where it went wrong.
    """
    if not raw.strip():
        raise PayloadError("The body is empty; expected a commsNotifications JSON object.", code="malformed_json")
    try:
        body = codec.loads(raw, _strict_json)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            code="malformed_json",
            details={"line": exc.lineno, "column": exc.colno},
        ) from None
    except (ValueError, RecursionError) as exc:  # bad UTF-8, NaN, nesting beyond the parser's limit
        message = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise PayloadError(f"The body is not valid JSON: {message}.", code="malformed_json") from None
    # A body cannot nest deeper than it has brackets: most bodies are not walked at all.
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and codec.depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise PayloadError(
            f"The body nests deeper than {MAX_JSON_DEPTH} levels; Graph's notifications never do.",
            code="malformed_json",
        )
    return body


@dataclass(frozen=True)
class Received:
    """What one body did: a committed decision per notification, in order; the participant joining it carries
    (policy-based recording), whose answer goes back to Graph in the response body (:meth:`Receiver.decide_joining`)."""

    decisions: list[Decision]
    joining: Notification | None = None
    #: Where the body goes instead (region or instance routing); nothing was applied then.
    redirect: Redirect | None = None


class Receiver:
    """Validates a body, applies each notification through the store, and delivers the resulting events;
    ``guard`` watches each call that comes in for a reply in time, ``joining`` decides participants joining."""

    def __init__(
        self,
        store: CallStore,
        delivery: Delivery | None = None,
        *,
        clock: Callable[[], str] = utc_now,
        max_notifications: int = MAX_NOTIFICATIONS_PER_BODY,
        guard: AnswerGuard | None = None,
        joining: JoinDecider | None = None,
        repairs: Callable[[Decision], None] | None = None,
    ) -> None:
        self.store = store
        self.guard = guard
        self.joining = joining if joining is not None else JoinDecider()
        #: Called with a committed decision that asks for something to be read back from Graph (a roster).
        self.repairs = repairs
        self.clock = clock
        self.max_notifications = max_notifications
        self.delivery = delivery if delivery is not None else Delivery(store, clock=clock)

    def receive(self, body: Any, claims: Claims | None = None, context: dict[str, str] | None = None) -> list[Decision]:
        """Process one decoded body; return one committed decision per notification, in order.

        Raises :class:`PayloadError` before anything happens when the body is invalid, and
        :class:`~webhook.errors.StoreUnavailable` when a notification could not be stored (the ones before it
        were applied; re-sending the whole body is safe, as applied ones come back as duplicates).
        """
        return self.process(body, claims, context).decisions

    def process(
        self,
        body: Any,
        claims: Claims | None = None,
        context: dict[str, str] | None = None,
        *,
        here: Callable[[], tuple[str, ...]] = tuple,
    ) -> Received:
        """:meth:`receive`, with the participant joining the body carries (the first: Graph sends one at a time),
        or, before anything is applied, where ``route_incoming`` handlers send it (``here()``: this receiver's
        own URLs, which a redirect may not name)."""
        batch = body.get("value") if isinstance(body, dict) else None
        if isinstance(batch, list) and len(batch) > self.max_notifications:
            # Refused before any is validated: each costs a store transaction, and one body must not hold a
            # worker past gunicorn's timeout.
            raise PayloadError(
                f"The body holds {len(batch)} notifications; at most {self.max_notifications} are accepted in one "
                "(WEBHOOK_MAX_NOTIFICATIONS_PER_BODY). Graph sends a few at a time.",
                code="too_many_notifications",
            )
        notifications = load_notifications(body)
        if claims is not None:
            notifications = [n.with_claims(claims) for n in notifications]
        redirect = route(notifications, context or {}, here)
        if redirect is not None:
            return Received([], redirect=redirect)
        decisions = [self.apply(notification, context) for notification in notifications]
        joining = next((n for n in notifications if is_joining_notification(n.data)), None)
        return Received(decisions, joining)

    def decide_joining(self, notification: Notification) -> JoinResponse:
        """The answer to a participant joining: what ``participant_joining`` handlers decide in time."""
        return self.joining.decide(notification)

    def apply(self, notification: Notification, context: dict[str, str] | None = None) -> Decision:
        """Apply one notification and deliver its events; ``context`` (correlation headers) goes into the logs."""
        delivery = self.delivery
        if SIGNALS["notification_received"].has_receivers_for(notification.kind):  # rarely: spared otherwise
            delivery.deliver([Event("notification_received", notification.kind, {"notification": notification})])
        decision = self.store.apply(
            notification,
            self.clock(),
            lease=delivery.lease(),
        )
        metrics.child(metrics.notifications, notification.kind, decision.outcome).inc()
        for event in decision.events:
            if event.name == "call_state_changed":
                metrics.child(metrics.transitions, event.sender).inc()
                _log_transition(notification, event, context)
                if event.sender == "incoming" and self.guard is not None and decision.call is not None:
                    self.guard.watch(decision.call)  # before the handlers, whose time counts against it
        if decision.repair:
            self._repair(decision)
        delivery.deliver(decision.events)
        return decision

    def _repair(self, decision: Decision) -> None:
        if self.repairs is not None:
            self.repairs(decision)
        else:
            logger.warning(
                "call %s: %s, but without Graph credentials it cannot be read back",
                decision.call.id if decision.call is not None else "?",
                decision.reason,
            )


def _log_transition(notification: Notification, event: Event, context: dict[str, str] | None) -> None:
    previous = event.kwargs.get("previous")
    fields = {
        "callId": notification.call_id,
        "from": previous,
        "to": event.sender,
        "changeType": notification.change_type,
        "tenant": notification.claims.tenant_id,
        **(context or {}),
    }
    logs.emit(
        transitions_log, logging.INFO, "call %s: %s -> %s", (notification.call_id, previous, event.sender), fields
    )
