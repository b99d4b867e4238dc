"""Graph's answers that are not a success, as our errors (:mod:`webhook.errors`): ``CallGone`` (404),
``GraphForbidden`` (403, with the permission Graph names), ``GraphThrottled`` (429/503/504 past the deadline),
``GraphError`` otherwise; each carries Graph's code, its ``request-id`` and our ``client-request-id``."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import requests

from .errors import CallGone, GraphError, GraphForbidden, GraphThrottled

E = TypeVar("E", bound=GraphError)
#: What Graph says it did not process, and may be sent again after ``Retry-After``.
RETRIED = (429, 503, 504)
_PERMISSION = re.compile(r"\b(?:Calls|OnlineMeetings|OnlineMeetingArtifact)\.[A-Za-z]+(?:\.[A-Za-z]+)*\b")


def json_of(response: requests.Response) -> Any:
    """The answer's JSON, or None when it has none."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def retry_after_of(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds, or None."""
    text = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(text)) if text else None
    except ValueError:
        return None  # an HTTP date: Graph sends seconds; a date is not worth a guess


def graph_error(
    response: requests.Response, action: str, call_id: str | None, request_id: str, wait: float | None
) -> GraphError:
    """Our error for Graph's answer: what it said, the ids support asks for, and the kind of it (a call gone, a
    permission missing, a throttle that outlasts the deadline)."""
    status = response.status_code
    body = json_of(response)
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code, message = str(error.get("code") or ""), str(error.get("message") or response.reason or "")
    inner = error.get("innerError") or error.get("innererror") or {}
    graph_request_id = str(inner.get("request-id") or response.headers.get("request-id") or "")
    text = f"{action} on call {call_id}: Graph answered {status} {code}: {message} (request-id {graph_request_id})"

    def make(kind: type[E], message: str) -> E:
        return kind(
            message,
            status=status,
            graph_code=code,
            request_id=graph_request_id,
            client_request_id=request_id,
            action=action,
        )

    if 300 <= status < 400:
        return make(GraphError, f"{text}: a {status} redirect is not followed (it would turn the POST into a GET)")
    if status == 404:
        return make(CallGone, text)
    if status == 403:
        forbidden = make(GraphForbidden, text)
        found = _PERMISSION.search(message)
        forbidden.permission = found.group(0) if found else None
        return forbidden
    if status in RETRIED:
        throttled = make(
            GraphThrottled,
            text + ("" if wait is None else f"; it asked for {wait:g}s more than the deadline"),
        )
        throttled.retry_after = wait
        return throttled
    return make(GraphError, text)
