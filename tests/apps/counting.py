"""An app for the process tests: the real receiver, plus a receiver that appends every transition it hears
to the file named by COUNT_FILE, one JSON line per event, so events can be counted across worker processes."""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask

import webhook
from webhook.signals import call_state_changed


def _count(sender: Any, *, call: Any, previous: Any, **kwargs: Any) -> None:
    line = json.dumps({"call": call.id, "to": sender, "from": previous, "pid": os.getpid()}) + "\n"
    # O_APPEND writes of one short line are atomic between processes.
    fd = os.open(os.environ["COUNT_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def create_app() -> Flask:
    call_state_changed.connect(_count)
    return webhook.create_app()
