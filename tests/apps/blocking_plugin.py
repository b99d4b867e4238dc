"""A plugin for the crash test: its handler marks when it starts and finishes, and blocks while BLOCK_FILE
exists, so the test can kill the worker in the middle of it."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from webhook import on


def _mark(what: str, call_id: str) -> None:
    line = json.dumps({"what": what, "call": call_id, "pid": os.getpid()}) + "\n"
    with open(os.environ["MARKS_FILE"], "a") as marks:
        marks.write(line)


@on.call_state("established")
def remember_established(call: Any) -> None:
    _mark("started", call.id)
    while os.path.exists(os.environ["BLOCK_FILE"]):
        time.sleep(0.05)
    _mark("done", call.id)
