"""A handler's reply to an incoming call, kept in the store before it goes to Graph (the protocol of
:mod:`webhook.answering`), so that the answer-deadline guard of any process leaves an answered call alone and
a handler learns that the guard replied first."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from .answering import claim_reply, release_reply
from .clock import utc_now
from .errors import AlreadyReplied, StoreError
from .store.base import CallStore

logger = logging.getLogger("webhook.actions")


@contextmanager
def replying(store: CallStore | None, call_id: str, action: str) -> Iterator[None]:
    """Around the request of a handler's ``answer``, ``reject`` or ``redirect``: claim the reply first, and
    take it back when the request fails, so that the guard still may act.

    Raises :class:`~webhook.errors.AlreadyReplied` before anything is sent when the guard replied first.
    Without a store (actions built by hand), or when the store cannot be written, the reply goes anyway:
    losing the call would be worse than racing the guard.
    """
    if store is None:
        yield
        return
    now = utc_now()
    try:
        claimed = store.update(call_id, now, lambda call: claim_reply(call, action, "handler", now))
    except StoreError as exc:
        logger.warning("could not keep the %s of call %s in the store (%s): sending it", action, call_id, exc)
        claimed = None
    if claimed is None:
        _refuse_after_guard(store, call_id, action)
        yield
        return
    reply = claimed.call.reply if claimed.call is not None else None
    try:
        yield
    except BaseException:
        if reply is not None:
            try:
                store.update(call_id, utc_now(), lambda call: release_reply(call, reply))
            except StoreError as exc:  # the request's own failure is what the handler must hear
                logger.warning("could not take back the failed %s of call %s: %s", action, call_id, exc)
        raise


def _refuse_after_guard(store: CallStore, call_id: str, action: str) -> None:
    """Raise :class:`AlreadyReplied` when the guard replied to the call already; else return (the call is
    unknown here, or a handler replied before: Graph has the last word)."""
    try:
        known = store.get(call_id)
    except StoreError:
        return
    reply = known.reply if known is not None else None
    if reply is not None and reply.get("by") == "guard":
        raise AlreadyReplied(
            f"call {call_id} was already given the answer-deadline fallback ({reply.get('action')} at "
            f"{reply.get('at')}, WEBHOOK_ANSWER_FALLBACK): the {action} was not sent. Answer sooner, or raise "
            "WEBHOOK_ANSWER_DEADLINE_SECONDS",
            reply=reply,
            action=action,
        )
