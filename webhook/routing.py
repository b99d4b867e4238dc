"""Region and instance routing: an incoming call's notification sent on to another callback URL.

Graph follows a ``302`` or ``307`` from a bot's callback URL to its ``Location`` (Microsoft's Communications SDK
uses this to send a call to the region, or the instance, that should host it). Handlers written with
``@on.route_incoming`` are asked, for each incoming call (a ``created`` call notification), where it belongs:
a URL (``307``, Graph posts the same body there) or :func:`redirect_to` (to choose ``302``), or None to keep it
here. A redirected body is neither stored, nor journaled, nor heard by any other handler here: the instance
it goes to does all that.

Handlers run in no fixed order: when they name different places, the call stays here (and the disagreement is
logged), so that no order decides. One that raises is logged and has no say.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import metrics
from .model import Call
from .notification import Notification
from .signals import route_incoming

logger = logging.getLogger("webhook.routing")

_STATUSES = (302, 307)


@dataclass(frozen=True)
class Redirect:
    """Where a body goes instead: ``Location`` and the status (307 keeps the method and body; 302 as Graph
    follows it too)."""

    location: str
    status: int = 307


def redirect_to(url: str, *, status: int = 307) -> Redirect:
    """Send the incoming call's notification to ``url`` (another region's or instance's callback URL)."""
    if not url.startswith("https://"):
        raise ValueError(f"an incoming call is redirected to a bot's https callback URL, not {url!r}")
    if status not in _STATUSES:
        raise ValueError(f"Graph follows 302 or 307, not {status}")
    return Redirect(url, status)


def is_incoming_call(notification: Notification) -> bool:
    """A ``created`` notification of a call: a call that has just come in."""
    return notification.kind == "call" and notification.change_type == "created"


def route(
    notifications: Iterable[Notification], headers: dict[str, str], here: Callable[[], Iterable[str]] = tuple
) -> Redirect | None:
    """Where the body holding ``notifications`` goes instead, or None to process it here. ``headers`` are the
    request's correlation headers (``MS-Teams-Region``...); ``here()`` the URLs of this receiver, which a redirect
    may not name (it would loop), asked only when a handler names a place."""
    if not route_incoming.receivers:
        return None
    for notification in notifications:
        place = _route_one(notification, headers) if is_incoming_call(notification) else None
        if place is not None and place.location in set(here()):
            logger.error(
                "call %s: a redirect to this receiver (%s) would loop: kept here", notification.call_id, place.location
            )
        elif place is not None:
            metrics.redirects.labels(str(place.status)).inc()
            logger.info("call %s: redirected %d to %s", notification.call_id, place.status, place.location)
            return place
    return None


def _route_one(notification: Notification, headers: dict[str, str]) -> Redirect | None:
    """What the handlers say of one incoming call: the one place they agree on, or None."""
    incoming = Call(notification.call_id, "incoming", data=dict(notification.data))
    sent = route_incoming.send(notification.call_id, incoming=incoming, notification=notification, headers=headers)
    places = {place for place in (_place_of(receiver, result) for receiver, result in sent) if place}
    if len(places) > 1:
        named = ", ".join(sorted(place.location for place in places))
        logger.error("call %s: route_incoming handlers disagree (%s): the call stays here", notification.call_id, named)
        return None
    return places.pop() if places else None


def _place_of(receiver: Any, result: Any) -> Redirect | None:
    if isinstance(result, Redirect):
        return result
    if isinstance(result, str):
        try:
            return redirect_to(result)
        except ValueError as exc:
            logger.error("route_incoming handler %s: %s", getattr(receiver, "handler_name", receiver), exc)
            return None
    if result is not None and not isinstance(result, Exception):  # a failure was reported already
        logger.error(
            "route_incoming handler %s returned %r: return a callback URL, redirect_to(url), or None",
            getattr(receiver, "handler_name", receiver),
            result,
        )
    return None
