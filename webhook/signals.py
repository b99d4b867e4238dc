"""comms-webhook's Blinker signals, and the signal class that keeps receivers safe.

Two of Blinker's defaults are traps for a webhook: a receiver is held by weak reference (a closure or a lambda
connected inside a function silently disappears), and one raising receiver stops the others. Signals here are
:class:`IsolatedSignal`: ``connect`` holds receivers strongly unless asked otherwise, and ``send`` calls every
receiver even when one raises, logs the traceback and sends :data:`handler_failed`.

Receivers are called in no guaranteed order and may hear the same transition again after a crash: write them
idempotent. Signals are process-global; each event is sent in the process whose transaction produced it.
"""

from __future__ import annotations

import inspect
import logging
import typing as t
from collections.abc import Callable, Coroutine

from blinker import ANY, NamedSignal, Namespace

logger = logging.getLogger("webhook.signals")

F = t.TypeVar("F", bound=Callable[..., t.Any])


class IsolatedSignal(NamedSignal):
    """A named signal with strong references by default and per-receiver failure isolation.

    ``arguments`` names the keyword arguments it sends (some only with some senders: ``end_reason`` comes
    with ``terminated``).
    """

    arguments: tuple[str, ...] = ()

    def connect(self, receiver: F, sender: t.Any = ANY, weak: bool = False) -> F:
        return super().connect(receiver, sender, weak)

    def send(
        self,
        sender: t.Any | None = None,
        /,
        *,
        _async_wrapper: Callable[[Callable[..., Coroutine[t.Any, t.Any, t.Any]]], Callable[..., t.Any]] | None = None,
        **kwargs: t.Any,
    ) -> list[tuple[Callable[..., t.Any], t.Any]]:
        """Call every receiver; a receiver that raises gets its exception as its result.

        The failure is logged with its traceback and reported through :data:`handler_failed` (whose own
        failing receivers are only logged, so a broken failure handler cannot loop).
        """
        if self.is_muted:
            return []
        results: list[tuple[Callable[..., t.Any], t.Any]] = []
        for receiver in self.receivers_for(sender):
            if _async_wrapper is not None and inspect.iscoroutinefunction(receiver):
                receiver = _async_wrapper(receiver)
            result, error = self.call_receiver(receiver, sender, kwargs)
            results.append((receiver, error if error is not None else result))
        return results

    def call_receiver(
        self, receiver: Callable[..., t.Any], sender: t.Any, kwargs: dict[str, t.Any]
    ) -> tuple[t.Any, Exception | None]:
        """Call one receiver; return ``(result, None)``, or ``(None, exception)`` after reporting the failure."""
        try:
            return receiver(sender, **kwargs), None
        except Exception as exc:
            self._report_failure(receiver, sender, exc, kwargs)
            return None, exc

    def _report_failure(
        self, receiver: Callable[..., t.Any], sender: t.Any, exc: Exception, kwargs: dict[str, t.Any]
    ) -> None:
        name = receiver_name(receiver)
        call = kwargs.get("call")
        call_id = getattr(call, "id", None)
        logger.error("handler %s failed on %s (sender %r, call %s)", name, self.name, sender, call_id, exc_info=exc)
        if self is handler_failed:
            return
        handler_failed.send(
            self.name, handler=name, receiver=receiver, exception=exc, original_sender=sender, call=call, kwargs=kwargs
        )


def receiver_name(receiver: Callable[..., t.Any]) -> str:
    """``module.qualname`` of a receiver, for logs and failure records."""
    named = getattr(receiver, "handler_name", None)
    if isinstance(named, str):
        return named
    module = getattr(receiver, "__module__", None) or "?"
    qualname = getattr(receiver, "__qualname__", None) or repr(receiver)
    return f"{module}.{qualname}"


class _Namespace(Namespace):
    def signal(self, name: str, doc: str | None = None) -> NamedSignal:
        if name not in self:
            self[name] = IsolatedSignal(name, doc)
        return self[name]


namespace = _Namespace()


def _signal(name: str, doc: str, arguments: tuple[str, ...]) -> IsolatedSignal:
    signal = namespace.signal(name, doc)
    assert isinstance(signal, IsolatedSignal)
    signal.arguments = arguments
    return signal


notification_received = _signal(
    "notification_received",
    """Every valid notification, before it changes any state (duplicates and stale ones included).
    Sender: the resource kind (``"call"``, ``"participants"``, ``"operation"``, ``"other"``).
    Keyword arguments: ``notification``.""",
    ("notification",),
)
call_state_changed = _signal(
    "call_state_changed",
    """Once per applied transition. Sender: the new state as a string, so ``connect(fn, sender="terminated")``
    hears one state. Keyword arguments: ``call`` (after the change), ``previous`` (the state before, or None),
    ``notification``; for ``terminated`` also ``end_reason`` (Graph's end code in plain words).""",
    ("call", "previous", "notification", "end_reason"),
)
call_updated = _signal(
    "call_updated",
    """A notification that changed the call's record without changing its state (``mediaState``,
    ``chatInfo``, ``meetingInfo``, fields no schema lists). Sender: the call id. Keyword arguments: ``call``,
    ``changes`` (``{field: {"old": ..., "new": ...}}`` for each top-level field that changed),
    ``notification``. A pure duplicate fires nothing.""",
    ("call", "changes", "notification"),
)
call_media_active = _signal(
    "call_media_active",
    """Once per call, the first time it is ``established`` with ``mediaState.audio`` ``active``: the moment a
    bot can start playing prompts. Sender: the call id. Keyword arguments: ``call``, ``notification``.""",
    ("call", "notification"),
)
participants_updated = _signal(
    "participants_updated",
    """A roster that changed the call's participants. Sender: the call id.
    Keyword arguments: ``call``, ``participants`` (the new roster), ``notification``.""",
    ("call", "participants", "notification"),
)
participants_joined = _signal(
    "participants_joined",
    """Participants present in this roster and not in the previous one. Sender: the call id. Keyword arguments:
    ``call``, ``participants`` (each marked ``"isBot": true`` when its identity is an application),
    ``notification``.""",
    ("call", "participants", "notification"),
)
participants_left = _signal(
    "participants_left",
    """Participants gone from this roster, or listed with ``removedState``. Sender: the call id. Keyword
    arguments: ``call``, ``participants`` (marked ``isBot`` likewise), ``notification``.""",
    ("call", "participants", "notification"),
)
operation_completed = _signal(
    "operation_completed",
    """An operation result (completed or failed), once per operation and status. Sender: the operation type
    (``"playPrompt"``, ``"record"``, ``"inviteParticipants"``...). Keyword arguments: ``call``, ``operation``
    (id, type, status, completionReason, resultInfo, clientContext), ``status``, ``completion_reason``,
    ``result_info``, ``client_context``, ``succeeded`` (the truth: sendDtmfTones says ``completed`` when it was
    cancelled), ``notification``.""",
    ("call", "operation", "status", "completion_reason", "result_info", "client_context", "succeeded", "notification"),
)
tone_received = _signal(
    "tone_received",
    """A DTMF tone, once per ``sequenceId``. Sender: the tone (``"tone1"``...). Keyword arguments: ``call``,
    ``tone``, ``sequence_id``, ``notification``.""",
    ("call", "tone", "sequence_id", "notification"),
)
call_stale = _signal(
    "call_stale",
    """An active call had no notification for ``WEBHOOK_STALE_AFTER_SECONDS``: its ``terminated`` may never come
    (Graph requires a keepAlive every 15 to 45 minutes). Fires once per quiet spell, on one worker of one
    instance; the next notification clears the mark. Sender: the call id. Keyword arguments: ``call``,
    ``last_seen`` (when the last notification arrived).""",
    ("call", "last_seen"),
)
participant_joining = _signal(
    "participant_joining",
    """A participant under a recording policy is about to join a call this compliance recording bot records
    (Graph's ``participantJoiningNotification``). Receivers return the decision (``webhook.joining.accept()``,
    ``reject(reason)``, ``invite_new_bot(uri)``) or None; it is answered in the response body, before the 202's
    place. Sender: the call id of the notification. Keyword arguments: ``joining`` (the joining call, a
    :class:`~webhook.model.Call`), ``notification``.""",
    ("joining", "notification"),
)
route_incoming = _signal(
    "route_incoming",
    """An incoming call's notification, before anything is stored: receivers return the callback URL of the
    region or instance it belongs to (answered ``307``; or ``webhook.routing.redirect_to(url, status=302)``), or
    None to keep it here. Sender: the call id. Keyword arguments: ``incoming`` (the call, a
    :class:`~webhook.model.Call`), ``notification``, ``headers`` (the correlation headers, ``MS-Teams-Region``
    among them).""",
    ("incoming", "notification", "headers"),
)
handler_failed = _signal(
    "handler_failed",
    """A receiver raised. The other receivers still ran and the request still succeeded. Sender: the name of
    the signal whose receiver failed. Keyword arguments: ``handler`` (its name), ``receiver``, ``exception``,
    ``original_sender``, ``call``, ``kwargs``.""",
    ("handler", "receiver", "exception", "original_sender", "call", "kwargs"),
)

#: Every signal comms-webhook sends, by name, in the order they are declared above (each declared once: the
#: namespace holds them).
SIGNALS: dict[str, IsolatedSignal] = {
    name: signal for name, signal in namespace.items() if isinstance(signal, IsolatedSignal)
}
