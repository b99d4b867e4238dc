"""An app for the process tests: the real receiver, plus a receiver on every signal that appends what it heard
to the file named by COUNT_FILE, one JSON line per event, so events can be counted across worker processes."""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask

import webhook
from webhook.signals import SIGNALS


def _recorder(signal_name: str) -> Any:
    def record(sender: Any, **kwargs: Any) -> None:
        call = kwargs.get("call")
        event = {"signal": signal_name, "sender": sender, "call": getattr(call, "id", None), "pid": os.getpid()}
        if signal_name == "call_state_changed":
            event["from"] = kwargs["previous"]
        # O_APPEND writes of one short line are atomic between processes.
        fd = os.open(os.environ["COUNT_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(event) + "\n").encode())
        finally:
            os.close(fd)

    return record


def create_app() -> Flask:
    for name, signal in SIGNALS.items():
        if name not in ("notification_received", "handler_failed"):
            signal.connect(_recorder(name))
    return webhook.create_app()
