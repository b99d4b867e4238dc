"""A plugin for the shutdown test: a deferred handler that takes a while, then leaves a mark."""

from __future__ import annotations

import os
import time
from typing import Any

from webhook import on


@on.call_state("incoming", deferred=True)
def slow_greeting(call: Any) -> None:
    time.sleep(1.5)
    with open(os.environ["MARKS_FILE"], "a") as marks:
        marks.write(f"greeted {call.id}\n")
