"""A calling bot as users write one, loaded by gunicorn's workers (WEBHOOK_PLUGINS=tests.apps.calling_bot).

What each handler did goes to CALLING_BOT_LOG, one JSON line each (with the worker's pid), for the test to read.
The caller's name says what the bot does after its greeting: "Hangup..." hangs up when the prompt has played,
"Tones..." subscribes to tones, "Quiet..." is not answered by the bot at all.
"""

from __future__ import annotations

import json
import os
from typing import Any

from webhook import on
from webhook.actions import CallActions
from webhook.errors import GraphError, GraphForbidden, GraphUnreachable

LOG = os.environ.get("CALLING_BOT_LOG", os.devnull)


def note(event: str, call: Any, **fields: Any) -> None:
    line = json.dumps({"event": event, "call": call.id, "pid": os.getpid(), **fields})
    with open(LOG, "a") as log:
        log.write(line + "\n")


def caller(call: Any) -> str:
    return call.caller.display_name if call.caller is not None else ""


@on.call_state("incoming")
def answer(call: Any, actions: CallActions) -> None:
    if caller(call).startswith("Quiet"):
        return
    actions.answer()
    note("answered", call)


@on.media_active
def greet(call: Any, actions: CallActions) -> None:
    try:
        operation = actions.play_prompt("https://bot.contoso.com/welcome.wav", client_context=caller(call))
    except GraphUnreachable as exc:
        note("prompt_unreachable", call, sent=exc.sent)
        return
    note("prompt_started", call, operation=operation.id)
    if caller(call).startswith("Tones"):
        try:
            actions.subscribe_to_tone()
        except GraphForbidden as exc:
            note("forbidden", call, permission=exc.permission, status=exc.status)


@on.operation("playPrompt")
def played(call: Any, succeeded: bool, client_context: str | None, actions: CallActions) -> None:
    note("played", call, succeeded=succeeded, context=client_context)
    if (client_context or "").startswith("Hangup"):
        try:
            actions.hang_up()
        except GraphError as exc:
            note("hang_up_failed", call, error=exc.message)
            return
        note("hung_up", call)


@on.call_state("terminated")
def ended(call: Any, end_reason: str | None) -> None:
    note("ended", call, reason=end_reason, origin=call.history[-1].get("origin", "graph"))
