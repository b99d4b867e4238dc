"""Handlers: how a bot developer's code hears about calls.

Write handlers with the decorators of :data:`on`; each takes the keyword arguments it names::

    from webhook import on

    @on.call_state("established")
    def greet(call, previous):
        ...

    @on.operation("playPrompt", deferred=True)   # runs after Graph got its 202
    def prompt_done(call, succeeded, claims):
        ...

A handler receives the signal's documented keyword arguments (``call``, ``previous``, ``notification``,
``changes``...) plus ``claims`` (the verified tenant, issuer and app id), and only those its signature names
(or all of them, with ``**kwargs``). Handlers are held strongly, run in no guaranteed order, and must be
idempotent: after a crash a transition is handed to them again. Plugins (:mod:`webhook.plugins`) are the
modules that register them.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .signals import (
    IsolatedSignal,
    call_media_active,
    call_stale,
    call_state_changed,
    call_updated,
    handler_failed,
    notification_received,
    operation_completed,
    participant_joining,
    participants_joined,
    participants_left,
    participants_updated,
    route_incoming,
    tone_received,
)

F = TypeVar("F", bound=Callable[..., Any])

_loading_plugin: contextvars.ContextVar[str | None] = contextvars.ContextVar("loading_plugin", default=None)


@contextmanager
def registering_for(plugin: str) -> Iterator[None]:
    """Handlers registered inside this block belong to ``plugin`` (their module's name otherwise)."""
    token = _loading_plugin.set(plugin)
    try:
        yield
    finally:
        _loading_plugin.reset(token)


@dataclass(eq=False)
class Handler:
    """A user's function connected to a signal, as a Blinker receiver that speaks keyword arguments."""

    func: Callable[..., Any]
    signal: IsolatedSignal
    senders: tuple[str, ...] | None
    deferred: bool
    plugin: str
    #: Only the events of this bot (its app id), when one receiver serves several; None: every bot's.
    app: str | None = None
    handler_name: str = ""
    _names: frozenset[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.handler_name = f"{self.func.__module__}.{self.func.__qualname__}"
        parameters = inspect.signature(self.func).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            self._names = frozenset(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        self._check_parameters(parameters)

    def _check_parameters(self, parameters: Iterable[inspect.Parameter]) -> None:
        """Refuse, now, a handler that would fail on every call: it requires an argument the signal never sends."""
        acting = ("actions",) if "call" in self.signal.arguments else ()
        offered = ("sender", "claims", *self.signal.arguments, *acting)
        for parameter in parameters:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            required = parameter.default is inspect.Parameter.empty
            if parameter.kind is parameter.POSITIONAL_ONLY or (required and parameter.name not in offered):
                raise TypeError(
                    f"handler {self.handler_name} takes {parameter.name!r}, which {self.signal.name} never sends; "
                    f"it sends {', '.join(offered)} (by keyword: take any of them, or **kwargs)"
                )

    def __call__(self, sender: Any, **kwargs: Any) -> Any:
        notification = kwargs.get("notification")
        if self.app is not None and _app_of(kwargs) != self.app:
            return None  # another bot's event
        offered = {"sender": sender, "claims": getattr(notification, "claims", None), **kwargs}
        if self._names is not None:
            offered = {name: value for name, value in offered.items() if name in self._names}
            if "actions" in self._names:  # built only for the handlers that ask
                from .binding import actions_for_event

                offered["actions"] = actions_for_event(kwargs)
        return self.func(**offered)

    def describe(self) -> str:
        filters = f" {', '.join(self.senders)}" if self.senders else ""
        deferred = " (deferred)" if self.deferred else ""
        app = f" (app {self.app})" if self.app else ""
        return f"{self.handler_name} on {self.signal.name}{filters}{deferred}{app}"


def _app_of(kwargs: dict[str, Any]) -> str | None:
    """The bot an event belongs to: the audience of its notification's token, else its call's app id."""
    audience = getattr(getattr(kwargs.get("notification"), "claims", None), "audience", None)
    if audience:
        return str(audience)
    app_id = getattr(kwargs.get("call"), "app_id", None)
    return str(app_id) if app_id else None


#: Every handler registered through :data:`on`, in registration order.
HANDLERS: list[Handler] = []


def register(
    func: F, signal: IsolatedSignal, senders: Iterable[str] = (), *, deferred: bool = False, app: str | None = None
) -> F:
    """Connect ``func`` to ``signal`` (for each of ``senders``, or any sender; only for the bot ``app``, when
    given) and return it unchanged."""
    wanted = tuple(senders) or None
    handler = Handler(func, signal, wanted, deferred, _loading_plugin.get() or func.__module__, app)
    for sender in wanted or (None,):
        if sender is None:
            signal.connect(handler)
        else:
            signal.connect(handler, sender=sender)
    HANDLERS.append(handler)
    return func


class On:
    """The decorators. Each may be used bare (``@on.participants``) or called (``@on.participants()``); each
    takes ``app="<app id>"`` to hear only that bot's events, when one receiver serves several."""

    def _decorate(self, signal: IsolatedSignal, args: tuple[Any, ...], deferred: bool, app: str | None = None) -> Any:
        if len(args) == 1 and callable(args[0]):
            return register(args[0], signal, deferred=deferred, app=app)
        senders = tuple(str(arg) for arg in args)

        def decorator(func: F) -> F:
            return register(func, signal, senders, deferred=deferred, app=app)

        return decorator

    def call_state(self, *states: Any, deferred: bool = False, app: str | None = None) -> Any:
        """A transition into one of ``states`` (any state when none is given)."""
        return self._decorate(call_state_changed, states, deferred, app)

    def call_updated(self, *args: Any, deferred: bool = False, app: str | None = None) -> Any:
        """Same state, new data: handler gets ``call``, ``changes``."""
        return self._decorate(call_updated, args, deferred, app)

    def media_active(self, *args: Any, deferred: bool = False, app: str | None = None) -> Any:
        """Once per call, when it is established with audio active: time to play a prompt."""
        return self._decorate(call_media_active, args, deferred, app)

    def participants(self, *args: Any, deferred: bool = False, app: str | None = None) -> Any:
        """Every roster change: ``participants`` is the new roster."""
        return self._decorate(participants_updated, args, deferred, app)

    def joined(self, *args: Any, deferred: bool = False, app: str | None = None) -> Any:
        return self._decorate(participants_joined, args, deferred, app)

    def left(self, *args: Any, deferred: bool = False, app: str | None = None) -> Any:
        return self._decorate(participants_left, args, deferred, app)

    def operation(self, *types: Any, deferred: bool = False, app: str | None = None) -> Any:
        """An operation result of one of ``types`` (``"playPrompt"``, ``"record"``...; any when none)."""
        return self._decorate(operation_completed, types, deferred, app)

    def tone(self, *tones: Any, deferred: bool = False, app: str | None = None) -> Any:
        """A DTMF tone (``"tone1"``...; any when none)."""
        return self._decorate(tone_received, tones, deferred, app)

    def notification(self, *kinds: Any, deferred: bool = False, app: str | None = None) -> Any:
        """Every valid notification, before it changes any state (``"call"``, ``"participants"``...)."""
        return self._decorate(notification_received, kinds, deferred, app)

    def stale(self, *args: Any, deferred: bool = False, app: str | None = None) -> Any:
        """An active call went quiet for STALE_AFTER_SECONDS: ``call``, ``last_seen``."""
        return self._decorate(call_stale, args, deferred, app)

    def participant_joining(self, *args: Any, app: str | None = None) -> Any:
        """Policy-based recording: return ``accept()``, ``reject(reason)`` or ``invite_new_bot(uri)`` (from
        :mod:`webhook.joining`) for ``joining``, the call a participant joins; answered within Graph's deadline."""
        return self._decorate(participant_joining, args, False, app)

    def route_incoming(self, *args: Any, app: str | None = None) -> Any:
        """Region and instance routing: return the callback URL an ``incoming`` call belongs to (or
        :func:`webhook.routing.redirect_to`), or None to keep it here."""
        return self._decorate(route_incoming, args, False, app)

    def failure(self, *signal_names: Any) -> Any:
        """Another handler raised: ``handler``, ``exception``, ``call``..."""
        return self._decorate(handler_failed, signal_names, False)


on = On()
