"""The answer-deadline guard: an incoming call no handler replied to in time gets the configured fallback.

Graph drops an incoming call that nobody answers, rejects or redirects within 15 seconds (408/1106): the
caller hears it ring out. The guard watches each call this process saw come in and, ``WEBHOOK_ANSWER_DEADLINE_SECONDS``
after (default 10; a policy-based recording call, which Graph drops at 5 s, at the same share of that),
does what ``WEBHOOK_ANSWER_FALLBACK`` says:

- ``none`` (the default): log a warning and count it. A bot that answers through its own Graph client is
  invisible here until Graph's ``establishing`` arrives, so the guard does nothing it could regret.
- ``reject``: reject the call as busy, so the caller hears busy at once instead of ringing out.
- ``redirect``: redirect it to ``WEBHOOK_ANSWER_FALLBACK_TARGET`` (a user, an application, a phone number).

The guard claims its reply through the store (:func:`webhook.answering.claim_reply`), as a handler's
``answer()`` does before it posts: of the two, exactly one replies, in any process of any instance. It acts
only on a call still ``incoming`` here, so a call Graph reports answered is left alone too.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
import weakref

from . import metrics
from .actions import CallActions, target_identity
from .answering import answer_limit, claim_reply, guard_delay
from .clock import utc_now
from .errors import WebhookError
from .graph import GraphClient
from .model import Call
from .settings import default
from .store.base import CallStore
from .upkeep import ClientFor, client_lookup

logger = logging.getLogger("webhook.answer_guard")


class AnswerGuard:
    """The guard of one app in one process: :meth:`watch` each call that came in, and a thread of its own
    gives each, when due, to :meth:`act`. ``clients`` (Graph: a client, or the client of a call's bot by its
    app id) are needed unless ``fallback`` is ``none``."""

    def __init__(
        self,
        store: CallStore,
        clients: GraphClient | ClientFor | None = None,
        *,
        deadline_seconds: float = default("ANSWER_DEADLINE_SECONDS"),
        fallback: str = default("ANSWER_FALLBACK"),
        target: str = default("ANSWER_FALLBACK_TARGET"),
    ) -> None:
        if fallback != "none" and clients is None:
            raise ValueError(f"the {fallback} fallback acts through Graph: give the guard a client")
        self.store = store
        self.clients = client_lookup(clients)
        self.deadline_seconds, self.fallback, self.target = deadline_seconds, fallback, target
        self._due: list[tuple[float, str]] = []  # (time.monotonic() when due, call id), a heap
        self._wake = threading.Condition()
        self._started_in: int | None = None

    def watch(self, call: Call) -> None:
        """Act on ``call`` when its deadline passes, unless someone replied by then (the receiver calls this
        as the call's arrival is committed)."""
        due = time.monotonic() + guard_delay(call, self.deadline_seconds)
        with self._wake:
            if self._started_in != os.getpid():  # a forked worker: its parent's calls are its parent's
                self._due.clear()
                self._start()
            heapq.heappush(self._due, (due, call.id))
            self._wake.notify()

    def pending(self) -> int:
        """How many calls wait for their deadline here."""
        with self._wake:
            return len(self._due)

    def act(self, call_id: str) -> str:
        """Give ``call_id`` the fallback if it is still incoming with no reply; return what happened:
        ``replied`` (someone replied, or the call moved on), ``logged`` (fallback none), ``sent``, ``failed``."""
        if self.fallback == "none":
            call = self.store.get(call_id)
            if call is None or call.reply is not None or call.state != "incoming":
                return "replied"
            logger.warning(
                "call %s: no handler replied within %gs of its arrival; Graph drops it at %gs (408/1106). Answer "
                "it from a handler of call_state('incoming'), or set WEBHOOK_ANSWER_FALLBACK",
                call_id,
                guard_delay(call, self.deadline_seconds),
                answer_limit(call),
            )
            return self._count("logged")
        now = utc_now()
        claimed = self.store.update(call_id, now, lambda call: claim_reply(call, self.fallback, "guard", now))
        if claimed is None or claimed.call is None:
            return "replied"
        return self._send(claimed.call)

    def _send(self, call: Call) -> str:
        client = self.clients(call.app_id)
        if client is None:
            logger.error("call %s: its bot has no Graph credentials for the answer-deadline fallback", call.id)
            return self._count("failed")
        if not call.tenant_id:
            logger.error("call %s: the answer-deadline fallback needs the call's tenant, which is unknown", call.id)
            return self._count("failed")
        actions = CallActions(client, call.id, call.tenant_id)  # no store: the guard's claim is made
        try:
            if self.fallback == "reject":
                actions.reject("busy")
            else:
                actions.redirect(target_identity(self.target))
        except WebhookError as exc:
            logger.error("call %s: the answer-deadline %s failed: %s", call.id, self.fallback, exc.message)
            return self._count("failed")
        done = "rejected as busy" if self.fallback == "reject" else f"redirected to {self.target}"
        logger.warning(
            "call %s: no handler replied within %gs of its arrival: %s (WEBHOOK_ANSWER_FALLBACK)",
            call.id,
            guard_delay(call, self.deadline_seconds),
            done,
        )
        return self._count("sent")

    def _count(self, outcome: str) -> str:
        metrics.answer_deadlines.labels(self.fallback, outcome).inc()
        return outcome

    def _next(self, wait: float) -> str | None:
        """The next call due, waiting at most ``wait`` seconds for one; None when none is due yet."""
        with self._wake:
            if self._due:
                wait = min(wait, self._due[0][0] - time.monotonic())
            if wait > 0:
                self._wake.wait(wait)
            if self._due and self._due[0][0] <= time.monotonic():
                return heapq.heappop(self._due)[1]
        return None

    def _start(self) -> None:
        """The guard's thread in this process; it holds the guard weakly, so that an app that is gone stops."""
        self._started_in = os.getpid()
        reference = weakref.ref(self)

        def run() -> None:
            while True:
                guard = reference()
                if guard is None:
                    return
                call_id = guard._next(1.0)
                if call_id is not None:
                    try:
                        guard.act(call_id)
                    except WebhookError as exc:  # the store is unavailable: Graph's own deadline will do
                        logger.error("answer-deadline guard of call %s: %s", call_id, exc.message)
                    except Exception:  # a bug here must not end the guard of this worker for good
                        logger.exception("answer-deadline guard of call %s failed", call_id)
                del guard

        threading.Thread(target=run, name="webhook-answer-guard", daemon=True).start()
