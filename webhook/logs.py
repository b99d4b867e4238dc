"""Structured logs: one JSON object per line, with the call, the tenant and Graph's correlation headers.

``create_app`` installs one handler on the ``webhook`` logger (stderr, which gunicorn and every platform
collect); records carry their structured fields in ``extra={"fields": {...}}``. Tokens are never logged.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

import msgspec

_MARK = "_comms_webhook_handler"


#: Any value a record's fields may hold that JSON has no type for is written as its ``str()``.
_ENCODER = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, milliseconds), level, logger, message, then the record's fields."""

    def __init__(self) -> None:
        super().__init__()
        self._second, self._stamp = -1, ""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        try:
            return _ENCODER.encode(line).decode()
        except (TypeError, ValueError, OverflowError):  # a lone surrogate, a key that is not a string...
            return json.dumps(line, default=str)

    def _time(self, created: float) -> str:
        """``2026-12-02T19:01:10.225+00:00``: the date and time formatted once per second (a log line per
        request made this a measurable share of the request)."""
        second = int(created)
        micros = round((created - second) * 1e6)  # as datetime rounds it, then milliseconds cut as isoformat does
        if micros >= 1_000_000:
            second, micros = second + 1, 0
        if second != self._second:  # a race between threads writes the same text twice: harmless
            self._stamp = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._stamp}.{micros // 1000:03d}+00:00"


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items() if value not in (None, "", {}))
        return text


def emit(logger: logging.Logger, level: int, message: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
    """``logger.log(level, message, *args, extra={"fields": fields})`` for the lines written on every request
    (the access line, a transition): the same record to the same handlers, without the walk up the stack that
    finds the caller's file and line, which no formatter here prints."""
    if logger.isEnabledFor(level):
        logger.handle(logger.makeRecord(logger.name, level, "", 0, message, args, None, extra={"fields": fields}))


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written, as logging's last-resort handler does: a
    handler that kept the stream of its creation would write to a closed one once stderr is replaced (pytest's
    capture, a redirect)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr


def configure(level: str = "info", fmt: str = "json") -> None:
    """Send the ``webhook`` loggers to stderr in ``fmt``; idempotent (the last call's format and level win)."""
    logger = logging.getLogger("webhook")
    handler = next((h for h in logger.handlers if getattr(h, _MARK, False)), None)
    if handler is None:
        handler = _Stderr()
        setattr(handler, _MARK, True)
        logger.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.setLevel(level.upper())
