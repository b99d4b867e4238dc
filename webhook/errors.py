"""The exceptions comms-webhook raises.

Every error the receiver turns into an HTTP answer carries the status, a short machine-readable ``code``, a
message a person can act on, and optional ``details``. The HTTP layer renders them as
``{"error": code, "message": message, "details": details}`` and never adds a traceback.
"""

from __future__ import annotations

from typing import Any


class WebhookError(Exception):
    """Base class of every error comms-webhook raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


class ConfigError(WebhookError):
    """A setting has a value we cannot use; raised at start-up, never per request."""

    code = "config_error"


class RequestError(WebhookError):
    """The request itself is unacceptable (4xx): nothing was stored, journaled or signalled."""

    status = 400
    code = "bad_request"


class PayloadError(RequestError):
    """The body is not a valid ``commsNotifications`` envelope; ``details`` holds the field errors."""

    code = "invalid_payload"


class UnsupportedMediaType(RequestError):
    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(RequestError):
    status = 413
    code = "payload_too_large"


class AuthError(RequestError):
    """The caller did not prove it is Microsoft Graph calling this bot."""

    status = 401
    code = "unauthorized"


class Forbidden(RequestError):
    status = 403
    code = "forbidden"


class NotFound(RequestError):
    status = 404
    code = "not_found"


class StoreError(WebhookError):
    """The call store failed in a way a retry will not fix (a bug or a corrupt database)."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The call store cannot be reached or is too busy now; the sender should retry later."""

    status = 503
    code = "store_unavailable"
    retry_after = 5
