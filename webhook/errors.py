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
    #: Seconds after which retrying may succeed (sent as ``Retry-After`` with a 503); None: retrying will not help.
    retry_after: float | None = None

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}

    @property
    def public_message(self) -> str:
        """What the HTTP answer says: the message, unless it names something a caller must not learn."""
        return self.message


class ConfigError(WebhookError):
    """A setting has a value we cannot use; raised at start-up, or by a store the settings cannot open."""

    code = "config_error"

    @property
    def public_message(self) -> str:  # the message names settings and paths: for the log and the CLI only
        return "The receiver cannot work as configured; the server log says why."


class HandlerNotLoaded(WebhookError):
    """A handler failure cannot be retried here: no loaded plugin connected that handler."""

    code = "handler_not_loaded"


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


class RequestTimeout(RequestError):
    """The body stopped arriving: the client announced more than it sent."""

    status = 408
    code = "request_timeout"


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
    """The call store failed in a way a retry will not fix (a bug).

    ``message`` names the store (a file path, a host) for the logs and the CLI; what an anonymous caller sees
    is :attr:`public_message`, which says what happened without naming where.
    """

    code = "store_error"

    @property
    def public_message(self) -> str:
        return "The call store failed; the error was logged on the server."


#: What each reason of :class:`StoreUnavailable` means, in words safe to show any caller.
STORE_REASONS = {
    "unavailable": "the call store cannot be used now",
    "busy": "the call store is busy: another process holds its write lock",
    "disk_full": "the call store's disk is full or its file cannot grow",
    "replaced": "the database file was deleted or replaced while the receiver had it open; it is reopened",
    "corrupt": "the database file is corrupt: restore it from a backup or move it aside",
    "unreachable": "the call store cannot be reached",
    "evicting": "Redis may evict keys under memory pressure (maxmemory-policy), which would lose calls",
}


class StoreUnavailable(StoreError):
    """The call store cannot be used now (busy, unreachable, disk full, file replaced or corrupt): nothing was
    stored, and the sender should retry later. ``reason`` is one of :data:`STORE_REASONS`."""

    status = 503
    code = "store_unavailable"
    retry_after = 5

    def __init__(self, message: str, *, reason: str = "unavailable") -> None:
        super().__init__(message, details={"reason": reason})
        self.reason = reason

    @property
    def public_message(self) -> str:
        return f"Nothing was stored: {STORE_REASONS.get(self.reason, self.reason)}. Retry later."


class KeysUnavailable(WebhookError):
    """No signing key has ever been fetched and the key server cannot be reached now: callbacks cannot be
    verified, so they are refused (503) until it can."""

    status = 503
    code = "signing_keys_unavailable"
    retry_after = 30


class GraphError(WebhookError):
    """Graph refused or failed an outbound request. ``status`` is Graph's HTTP status (0: no answer),
    ``graph_code`` and ``message`` its error, ``request_id`` what Microsoft support asks for."""

    code = "graph_error"

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        graph_code: str = "",
        request_id: str = "",
        client_request_id: str = "",
        action: str = "",
    ) -> None:
        super().__init__(message)
        self.status, self.graph_code, self.request_id = status, graph_code, request_id
        self.client_request_id, self.action = client_request_id, action


class CallGone(GraphError):
    """The call no longer exists in Graph (404, code 8522 "Call not found"): it has ended."""

    code = "call_gone"


class GraphThrottled(GraphError):
    """Graph kept answering 429 (or 503/504) past the action's deadline; ``retry_after`` is its last word."""

    code = "graph_throttled"


class GraphForbidden(GraphError):
    """403: the app lacks a permission; ``permission`` is the one Graph names (Calls.AccessMedia.All...)."""

    code = "graph_forbidden"
    permission: str | None = None


class GraphUnreachable(GraphError):
    """No answer came from Graph. ``sent`` says whether the request may have reached it; it is never repeated
    then (a second POST could answer, play or invite twice)."""

    code = "graph_unreachable"
    sent: bool = True


class AlreadyReplied(GraphError):
    """The incoming call was already rejected or redirected by the answer-deadline guard
    (``WEBHOOK_ANSWER_FALLBACK``) before this reply: nothing was sent to Graph. ``reply`` is the guard's."""

    code = "already_replied"

    def __init__(self, message: str, *, reply: dict[str, object], action: str = "") -> None:
        super().__init__(message, action=action)
        self.reply = reply


class GraphNotConfigured(ConfigError):
    """An action was asked for, but the settings lack what acting needs (credentials, the callback URL)."""
