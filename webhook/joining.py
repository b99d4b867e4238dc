"""Policy-based recording: a participant joining a call that a compliance recording bot records.

Before a participant under a recording policy joins a call, Graph sends the policy's bot a
``participantJoiningNotification`` (Microsoft's resource type of that name: its ``call`` is the joining call)
and expects a ``participantJoiningResponse`` in the response body, within its deadline (5 s for policy-based
recording): ``acceptJoinResponse`` (this bot records the participant too), ``rejectJoinResponse`` with a
``reason`` (``none``, ``busy``, ``forbidden``: the bot keeps getting joining notifications until it accepts or
its capacity is reached) or ``inviteNewBotResponse`` with an ``inviteUri`` (Graph sends the joining participant
as a new incoming call to that callback URL instead).

Handlers written with ``@on.participant_joining`` return one of :func:`accept`, :func:`reject` or
:func:`invite_new_bot` (or None: no opinion). Their decisions are combined so that their order does not matter:
a rejection wins over an invitation, which wins over an acceptance. Handlers that raise, return something
else, or do not decide within ``WEBHOOK_JOINING_TIMEOUT_SECONDS`` leave the answer to ``WEBHOOK_JOINING_DEFAULT``.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Literal

from . import metrics
from .builders import GRAPH, JSON
from .model import Call
from .notification import Notification
from .resources import canonical_id
from .settings import default
from .signals import participant_joining

logger = logging.getLogger("webhook.joining")

JoinKind = Literal["accept", "reject", "inviteNewBot"]
#: Which decision wins when handlers disagree: the most cautious.
_PRECEDENCE: dict[str, int] = {"accept": 0, "inviteNewBot": 1, "reject": 2}
_REASONS = ("none", "busy", "forbidden")
#: Handlers deciding at once, per process; one that hangs keeps its thread, never the request.
_THREADS = 8


@dataclass(frozen=True)
class JoinResponse:
    """A ``participantJoiningResponse``: what the receiver answers Graph in the response body."""

    kind: JoinKind
    reason: str | None = None
    invite_uri: str | None = None

    def to_graph(self) -> JSON:
        """The body as Graph reads it (``#microsoft.graph.acceptJoinResponse``...)."""
        if self.kind == "reject":
            return {"@odata.type": GRAPH + "rejectJoinResponse", "reason": self.reason or "none"}
        if self.kind == "inviteNewBot":
            return {"@odata.type": GRAPH + "inviteNewBotResponse", "inviteUri": self.invite_uri}
        return {"@odata.type": GRAPH + "acceptJoinResponse"}


def accept() -> JoinResponse:
    """Record the joining participant in this bot's call."""
    return JoinResponse("accept")


def reject(reason: str = "busy") -> JoinResponse:
    """Do not take the participant: ``none``, ``busy`` (no capacity left) or ``forbidden``."""
    if reason not in _REASONS:
        raise ValueError(f"a join is rejected with reason none, busy or forbidden, not {reason!r}")
    return JoinResponse("reject", reason=reason)


def invite_new_bot(invite_uri: str) -> JoinResponse:
    """Have Graph send the participant as a new incoming call to ``invite_uri`` (another instance's callback)."""
    if not invite_uri.startswith("https://"):
        raise ValueError(f"the invite URI is a bot's https callback URL, not {invite_uri!r}")
    return JoinResponse("inviteNewBot", invite_uri=invite_uri)


def joining_call(notification: Notification) -> Call:
    """The joining call the notification carries (its ``call``), as a :class:`~webhook.model.Call`."""
    data = notification.data.get("call") if isinstance(notification.data, dict) else None
    data = data if isinstance(data, dict) else {}
    call_id = data.get("id")
    state = data.get("state")
    return Call(
        id=canonical_id(call_id) if isinstance(call_id, str) and call_id else notification.call_id,
        state=state if isinstance(state, str) else None,
        data=dict(data),
        tenant_id=notification.claims.tenant_id or data.get("tenantId"),
    )


def combine(responses: list[JoinResponse]) -> JoinResponse | None:
    """The decision of several handlers, whatever order they ran in: the most cautious; None when none decided."""
    return max(responses, key=lambda response: _PRECEDENCE[response.kind]) if responses else None


class JoinDecider:
    """Runs the ``participant_joining`` handlers for one notification and says what to answer Graph."""

    def __init__(
        self,
        *,
        timeout_seconds: float = default("JOINING_TIMEOUT_SECONDS"),
        default_response: str = default("JOINING_DEFAULT"),
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.default = accept() if default_response == "accept" else reject("busy")
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._lock = threading.Lock()

    def decide(self, notification: Notification) -> JoinResponse:
        """The answer to one joining notification: the handlers' combined decision, else the default."""
        joining = joining_call(notification)
        future = self._threads().submit(
            participant_joining.send, notification.call_id, joining=joining, notification=notification
        )
        try:
            results = future.result(timeout=self.timeout_seconds)
        except FutureTimeout:
            logger.warning(
                "call %s: the participant_joining handlers did not decide within %gs "
                "(WEBHOOK_JOINING_TIMEOUT_SECONDS): answering %s (WEBHOOK_JOINING_DEFAULT)",
                notification.call_id,
                self.timeout_seconds,
                self.default.kind,
            )
            return self._count(self.default, "timeout")
        decided = combine([r for r in (_response_of(receiver, result) for receiver, result in results) if r])
        if decided is None:
            return self._count(self.default, "default")
        if len({result.kind for _, result in results if isinstance(result, JoinResponse)}) > 1:
            logger.info("call %s: participant_joining handlers disagreed; %s wins", notification.call_id, decided.kind)
        return self._count(decided, "handler")

    def _count(self, response: JoinResponse, by: str) -> JoinResponse:
        metrics.participant_joining.labels(response.kind, by).inc()
        return response

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:  # a forked worker gets threads of its own
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="webhook-joining")
                self._pool_pid = os.getpid()
            return self._pool


def _response_of(receiver: Any, result: Any) -> JoinResponse | None:
    """A handler's decision; what is neither a decision nor None (nor its failure, already reported) is
    logged and ignored."""
    if result is None or isinstance(result, (JoinResponse, Exception)):
        return result if isinstance(result, JoinResponse) else None
    name = getattr(receiver, "handler_name", repr(receiver))
    logger.error(
        "participant_joining handler %s returned %r: return webhook.joining.accept(), reject(reason) or "
        "invite_new_bot(uri), or None",
        name,
        result,
    )
    return None
