"""Reading a decoded body into notifications: the short way (:mod:`webhook.plain`) when it applies, the
schemas (:mod:`webhook.schemas`) otherwise, and their messages summarised when the body is wrong."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from .errors import PayloadError
from .notification import Notification
from .plain import plain_notifications
from .schemas import EnvelopeSchema

_ENVELOPE = EnvelopeSchema()


def load_notifications(body: Any) -> list[Notification]:
    """Validate a decoded ``commsNotifications`` body and return its notifications in order.

    Raises :class:`PayloadError` (400) with the marshmallow messages in ``details`` when anything is wrong;
    a body is accepted or rejected whole.
    """
    if not isinstance(body, dict):
        raise PayloadError(
            f"The body must be a JSON object (a commsNotifications envelope), not {_json_type(body)}.",
            code="invalid_envelope",
        )
    plain = plain_notifications(body)
    if plain is not None:
        return plain
    try:
        loaded = _ENVELOPE.load(body)
    except ValidationError as exc:
        raise PayloadError(
            "The body is not a valid commsNotifications envelope: " + _summarize(exc.messages),
            details={"fields": _string_keys(exc.messages)},
        ) from exc
    return list(loaded["value"])


def _string_keys(messages: Any) -> Any:
    """Marshmallow keys list errors by index (ints); JSON objects need string keys, sortable together."""
    if isinstance(messages, dict):
        return {str(key): _string_keys(value) for key, value in messages.items()}
    if isinstance(messages, list):
        return [_string_keys(item) for item in messages]
    return messages


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _summarize(messages: Any, prefix: str = "") -> str:
    """Flatten marshmallow's nested messages into ``value.0.resourceData.state: Not a valid string.``."""
    if isinstance(messages, dict):
        parts = [
            _summarize(inner, f"{prefix}{key}." if key != "_schema" else prefix) for key, inner in messages.items()
        ]
        return "; ".join(part for part in parts if part)
    if isinstance(messages, list):
        if all(isinstance(item, str) for item in messages):
            return f"{prefix.rstrip('.') or 'body'}: {' '.join(messages)}"
        return "; ".join(_summarize(item, prefix) for item in messages)
    return f"{prefix.rstrip('.') or 'body'}: {messages}"
