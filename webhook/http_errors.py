"""Errors as HTTP answers: every refusal a JSON body ``{"error", "message", "details"}`` with its 4xx status
(and ``WWW-Authenticate``, ``Retry-After``, ``Allow`` where they belong), counted in the metrics and, when
``JOURNAL_REJECTED`` is on, journaled; never a traceback."""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import metrics
from .errors import AuthError, PayloadTooLarge, StoreUnavailable, WebhookError
from .http import append_to_journal, body_text, webhook_state

logger = logging.getLogger("webhook.http")


def _error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    response = jsonify({"error": code, "message": message, "details": details or {}})
    response.status_code = status
    return response


def _handle_webhook_error(exc: WebhookError) -> Response:
    response = _error_response(exc.status, exc.code, exc.public_message, exc.details)
    _count_refusal(exc.status, exc.code, exc.details)
    _journal_rejected(exc.status, exc.code, exc.message)
    if isinstance(exc, AuthError):
        # RFC 6750: error="invalid_token" for a token that fails verification, a bare challenge otherwise.
        response.headers["WWW-Authenticate"] = (
            'Bearer error="invalid_token"' if exc.code == "invalid_token" else "Bearer"
        )
    if exc.status == 503 and exc.retry_after:
        response.headers["Retry-After"] = str(math.ceil(exc.retry_after))  # whole seconds, as RFC 9110 wants
    if exc.status >= 500:
        logger.error("%s: %s", exc.code, exc.message)
    return response


def _is_callback() -> bool:
    """Whether this request is Graph's POST to the callback URL (refusals of others are not counted)."""
    return request.method == "POST" and request.url_rule is not None and request.url_rule.rule == "/api/calls"


def _count_refusal(status: int, code: str, details: dict[str, Any]) -> None:
    if not _is_callback():
        return
    if code == StoreUnavailable.code:
        metrics.store_errors.inc()
    elif 400 <= status < 500:
        metrics.rejections.labels(code).inc()
        if code == "invalid_token" and "reason" in details:
            metrics.auth_failures.labels(details["reason"]).inc()


def _journal_rejected(status: int, code: str, message: str) -> None:
    if not _is_callback():
        return
    state = webhook_state()
    if state.journal is None or state.settings.journal_rejected != "on" or status >= 500:
        return
    raw = g.get("webhook_body")
    fields: dict[str, Any] = {"status": status, "error": code, "message": message}
    if raw is not None and len(raw) <= state.settings.max_body_bytes:
        fields["body"] = body_text(raw)
    append_to_journal(state.journal, "rejected", fields)


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")
    message = exc.description or exc.name or "error"
    if status == 413:
        message = "The body exceeds the size limit (WEBHOOK_MAX_BODY_BYTES)."
        code = PayloadTooLarge.code
        _journal_rejected(status, code, message)
    _count_refusal(status, code, {})
    response = _error_response(status, code, message)
    allowed = dict(exc.get_headers()).get("Allow")
    if allowed:
        response.headers["Allow"] = allowed
    return response


def _handle_unexpected(exc: Exception) -> Response:
    logger.exception("unexpected error while handling %s %s", request.method, request.path)
    return _error_response(500, "internal_error", "An unexpected error occurred; it was logged on the server.")


def register_error_handlers(app: Flask) -> None:
    """Every error as a JSON body with its status: ours, Werkzeug's, and anything unexpected (a 500 that
    shows no traceback; it is logged)."""
    app.register_error_handler(WebhookError, _handle_webhook_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
