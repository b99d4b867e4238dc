"""What binds the events a delivery sends to the calls API: a handler's ``actions`` argument, for the event's
call and its tenant."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .actions import CallActions
from .bots import Bots
from .errors import GraphNotConfigured
from .model import Call
from .store.base import CallStore


@dataclass(frozen=True)
class Binder:
    """What binds a call to the calls API: the bot it belongs to (its client, and the callback URL its answers
    name), and the store its replies are kept in."""

    bots: Bots
    store: CallStore | None = None

    def bind(self, call_id: str, tenant_id: str, *, call: Call | None = None) -> CallActions:
        bot = self.bots.of(call.app_id if call is not None else None)
        return CallActions(bot.client, call_id, tenant_id, bot.callback_url, self.store, call=call)


_BINDER: contextvars.ContextVar[Binder | None] = contextvars.ContextVar("webhook_actions_binder", default=None)


class binding:
    """While handlers run: the binder that their ``actions`` argument comes from (set by the delivery). A class,
    as it is entered around every handler call: a generator's context manager cost more than the call."""

    __slots__ = ("_binder", "_token")

    def __init__(self, binder: Binder | None) -> None:
        self._binder = binder

    def __enter__(self) -> None:
        self._token = _BINDER.set(self._binder)

    def __exit__(self, *exc_info: object) -> None:
        _BINDER.reset(self._token)


def actions_for_event(kwargs: Mapping[str, Any]) -> CallActions:
    """The ``actions`` of a handler, for the event's call and its tenant (the verified ``tid``, else the call's
    ``tenantId``)."""
    binder = _BINDER.get()
    call = kwargs.get("call")
    if binder is None or call is None:
        raise GraphNotConfigured("actions are given to handlers of call events that the receiver delivers")
    claims = getattr(kwargs.get("notification"), "claims", None)
    tenant = getattr(claims, "tenant_id", None) or call.tenant_id or call.data.get("tenantId")
    if not tenant:
        raise GraphNotConfigured(f"the tenant of call {call.id} is unknown (no verified token, no tenantId)")
    return binder.bind(call.id, str(tenant), call=call)
