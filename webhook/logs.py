"""Structured logs: one JSON object per line, with the call, the tenant and Graph's correlation headers.

``create_app`` installs one handler on the ``webhook`` logger (stderr, which gunicorn and every platform
collect); records carry their structured fields in ``extra={"fields": {...}}``. Tokens are never logged.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

_MARK = "_comms_webhook_handler"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items() if value not in (None, "", {}))
        return text


def configure(level: str = "info", fmt: str = "json") -> None:
    """Send the ``webhook`` loggers to stderr in ``fmt``; idempotent (the last call's format and level win)."""
    logger = logging.getLogger("webhook")
    handler = next((h for h in logger.handlers if getattr(h, _MARK, False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        setattr(handler, _MARK, True)
        logger.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.setLevel(level.upper())
