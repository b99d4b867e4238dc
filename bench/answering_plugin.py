"""The bench's answering bot: answers every incoming call, before the 202 or deferred (BENCH_ANSWER_DEFERRED=1),
behind the same slow-ish handler work a real bot may queue (BENCH_DEFERRED_WORK_SECONDS per call event)."""

from __future__ import annotations

import os
import time
from typing import Any

from webhook import on

DEFERRED = os.environ.get("BENCH_ANSWER_DEFERRED") == "1"
WORK_SECONDS = float(os.environ.get("BENCH_DEFERRED_WORK_SECONDS", "0"))


@on.call_state("incoming", deferred=DEFERRED)
def answer(call: Any, actions: Any) -> None:
    if call.caller is not None and (call.caller.display_name or "").startswith("bench "):  # not the load's calls
        actions.answer()


if WORK_SECONDS:

    @on.call_state(deferred=True)
    def busy(call: Any) -> None:
        time.sleep(WORK_SECONDS)  # what a bot does on every transition: write to a CRM, say
