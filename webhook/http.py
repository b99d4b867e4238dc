"""The thin Flask layer: ``POST /api/calls``, the read API, and JSON errors for everything.

Checks run cheapest first and before the body is read: authentication, then size, then content type. Every
error, ours or Werkzeug's, is answered as ``{"error", "message", "details"}`` with its 4xx status; an
unexpected exception is logged and answered 500 without a traceback.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Request, Response, current_app, g, jsonify, request
from werkzeug.exceptions import ClientDisconnected

from . import logs, metrics
from .auth import Verifier
from .bots import Bot, Bots
from .clock import utc_now
from .delivery import Delivery
from .errors import (
    AuthError,
    Forbidden,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    WebhookError,
)
from .graph import GraphClient
from .journal import Journal, environ_correlation_headers
from .legacy import is_legacy_calling_body
from .notification import Claims
from .plugins import LoadedPlugin
from .receiver import Receiver, decode_body
from .routing import Redirect
from .settings import Settings
from .store.base import CallStore
from .sweeper import Sweeper

logger = logging.getLogger("webhook.http")
access_log = logging.getLogger("webhook.access")

bp = Blueprint("webhook", __name__)

EXTENSION = "comms_webhook"


@dataclass(frozen=True)
class WebhookState:
    """What ``create_app`` wires together, kept in ``app.extensions["comms_webhook"]``."""

    settings: Settings
    store: CallStore
    receiver: Receiver
    delivery: Delivery
    sweeper: Sweeper
    plugins: tuple[LoadedPlugin, ...]
    #: The bots served: their audiences, credentials and callback URLs.
    bots: Bots
    journal: Journal | None = None
    #: Held while one request's notifications are processed (see receive_notifications).
    processing: threading.Lock = field(default_factory=threading.Lock)

    @property
    def verifier(self) -> Verifier | None:
        """The token verifier of the bare ``/api/calls``'s bot, else of the first bot that has one (they share
        their keys); None when authentication is disabled."""
        return next((bot.verifier for bot in (self.bots.default, *self.bots) if bot.verifier is not None), None)

    @property
    def graph(self) -> GraphClient:
        """The calls API of the bare ``/api/calls``'s bot."""
        return self.bots.default.client


def webhook_state() -> WebhookState:
    state: WebhookState = current_app.extensions[EXTENSION]
    return state


@bp.post("/api/calls")
def receive_notifications() -> Response:
    """Graph's callback for the bot of ``WEBHOOK_APP_ID`` (see :func:`receive_notifications_for`)."""
    return _receive(webhook_state(), None)


@bp.post("/api/calls/<app_id>")
def receive_notifications_for(app_id: str) -> Response:
    """Graph's callback for the bot ``app_id``, one of those this receiver serves (``WEBHOOK_APPS``)."""
    return _receive(webhook_state(), app_id)


def _receive(state: WebhookState, app_id: str | None) -> Response:
    """Graph's callback: 202 with an empty body (and no content type) once every notification is stored and
    signalled; 200 with the ``participantJoiningResponse`` for a participant joining; 307 (or 302) with a
    ``Location`` for an incoming call that ``route_incoming`` sends to another region or instance."""
    received_at = utc_now()
    # The objects behind Flask's proxies, looked up once: each use of a proxy looks them up again.
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    bot = state.bots.at(app_id)
    limit = state.settings.max_body_bytes
    claims = _authenticate(bot, req)
    if req.content_length is not None and req.content_length > limit:
        raise _too_large(limit, req.content_length)
    if req.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {req.mimetype or 'missing'}.",
            details={"contentType": req.content_type},
        )
    encoding = req.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding} is not accepted: send the JSON body unencoded (Graph does).",
            details={"contentEncoding": encoding},
        )
    # A chunked body has no Content-Length: Werkzeug stops reading at MAX_CONTENT_LENGTH (limit + 1, set by
    # create_app) without complaint, so one byte over the limit is how an oversized stream shows itself.
    raw = _read_body(req, state.settings.body_timeout_seconds)
    context = g._get_current_object()
    context.webhook_body = raw  # for the journal of rejected requests
    if len(raw) > limit:
        raise _too_large(limit)
    context.webhook_tenant = claims.tenant_id
    # Threads of a worker wait for slow clients side by side, but process notifications one at a time, as a sync
    # worker would: side by side they only contend for the GIL and the store's write lock (measured: a third
    # less throughput with 32 threads per worker).
    body = decode_body(raw)
    if is_legacy_calling_body(body):
        return _legacy_handshake(claims)

    def here() -> tuple[str, ...]:  # this request's own URL costs tens of µs to build: only a redirect asks
        return (req.base_url, state.settings.instance_callback_url)

    with state.processing:
        received = state.receiver.process(body, claims, _correlation(), here=here)
        if received.redirect is not None:  # another region's or instance's call: it journals it there
            return _redirect(received.redirect)
        context.webhook_calls = sorted({d.call.id for d in received.decisions if d.call is not None})
        if state.journal is not None and state.settings.journal == "on":
            record = {"receivedAt": received_at, "tenant": claims.tenant_id, "body": body_text(raw)}
            append_to_journal(state.journal, "journal", record)
    if received.joining is not None:  # policy-based recording: Graph reads the decision in the body
        # Outside the lock: the handlers have seconds to decide, and the worker's other callbacks must not wait.
        return jsonify(state.receiver.decide_joining(received.joining).to_graph())
    return _empty(202)


def _legacy_handshake(claims: Claims) -> Response:
    """204 to a body in the old calling format: Graph then sends it again in its own (nothing is stored)."""
    metrics.legacy_handshakes.inc()
    logger.info("a callback in the old Bot Framework calling format from tenant %s: answered 204", claims.tenant_id)
    return _empty(204)


def _redirect(redirect: Redirect) -> Response:
    answer = _empty(redirect.status)
    answer.headers["Location"] = redirect.location
    return answer


def _empty(status: int) -> Response:
    """An answer with no body, and so no content type (Flask's default would say text/html)."""
    answer = Response(status=status)
    del answer.headers["Content-Type"]
    return answer


def _correlation() -> dict[str, str]:
    """This request's correlation headers, read once for the logs and the journal."""
    context = g._get_current_object()
    found: dict[str, str] | None = context.get("webhook_correlation")
    if found is None:
        found = context.webhook_correlation = environ_correlation_headers(request.environ)
    return found


def _read_body(request: Request, timeout: float) -> bytes:
    """The body, read within ``timeout`` seconds of silence from the client.

    Under gunicorn the socket is blocking with no timeout: a client that announces a longer body than it sends
    would hold a thread (a whole sync worker) until it hangs up. Other servers bring their own timeouts.
    """
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(timeout)  # gunicorn makes the socket blocking again before its next request
    try:
        return request.get_data(cache=False)
    except (OSError, ClientDisconnected) as exc:
        raise RequestTimeout(
            f"The body did not arrive: it stalled for {timeout:g} s (WEBHOOK_BODY_TIMEOUT_SECONDS) or the client "
            "went away before sending all it announced in Content-Length.",
        ) from exc


def body_text(raw: bytes) -> str:
    return raw.decode(json.detect_encoding(raw), errors="replace")


def append_to_journal(journal: Journal, kind: str, fields: dict[str, Any]) -> None:
    """Append to the journal (``fields`` may carry an earlier ``receivedAt``); a journal that cannot be written
    is logged and counted, never fatal: the call was stored, and losing Graph's event over a debugging aid
    would be worse."""
    record = {"receivedAt": utc_now(), "headers": _correlation(), **fields}
    try:
        journal.append(record, kind=kind)
    except OSError as exc:
        metrics.journal_errors.inc()
        logger.error("could not write the %s journal in %s: %s", kind, journal.folder, exc)


def _too_large(limit: int, size: int | None = None) -> PayloadTooLarge:
    size_text = f"is {size} bytes" if size is not None else "exceeds the limit"
    return PayloadTooLarge(
        f"The body {size_text}; the limit is {limit} bytes (WEBHOOK_MAX_BODY_BYTES).", details={"limit": limit}
    )


def _authenticate(bot: Bot, request: Request) -> Claims:
    if bot.verifier is None:  # WEBHOOK_AUTH=disabled, warned about at start-up
        return Claims(audience=bot.app_id or None)
    return bot.verifier.verify(request.headers.get("Authorization"))


def require_admin(settings: Settings) -> None:
    if not settings.admin_token:
        raise Forbidden(
            "The read API is disabled. Set WEBHOOK_ADMIN_TOKEN and send it as 'Authorization: Bearer <token>'."
        )
    _check_bearer(settings.admin_token, "WEBHOOK_ADMIN_TOKEN")


def _check_bearer(expected: str, name: str) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthError(f"Send the token as 'Authorization: Bearer <{name}>'.")


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus metrics of every worker; needs METRICS_TOKEN, else ADMIN_TOKEN, when one is set."""
    state = webhook_state()
    token = state.settings.metrics_token or state.settings.admin_token
    if token:
        _check_bearer(token, "WEBHOOK_METRICS_TOKEN (or WEBHOOK_ADMIN_TOKEN)")
    body, content_type = metrics.render(state.store.count_calls)
    return Response(body, content_type=content_type)


@bp.before_app_request
def _start_timer() -> None:
    g.webhook_started = time.perf_counter()


@bp.after_app_request
def _log_request(response: Response) -> Response:
    req, context = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
    started = context.get("webhook_started")
    elapsed = time.perf_counter() - started if started is not None else 0.0
    endpoint = req.url_rule.rule if req.url_rule is not None else "unmatched"
    metrics.child(metrics.request_seconds, endpoint, str(response.status_code)).observe(elapsed)
    method, path, status = req.method, req.path, response.status_code
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "durationMs": round(elapsed * 1000, 2),
        "remoteAddr": req.remote_addr,
        "tenant": context.get("webhook_tenant"),
        "callIds": context.get("webhook_calls"),
        **_correlation(),
    }
    logs.emit(access_log, logging.INFO, "%s %s %s %.1fms", (method, path, status, elapsed * 1000), fields)
    return response


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive and serving."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready to accept Graph's callbacks: the store answers, signing keys are loaded or loadable, plugins loaded.

    200 or 503, with each check's result; a load balancer should stop sending to an instance that is not ready.
    """
    state = webhook_state()
    checks: dict[str, dict[str, Any]] = {}
    # Anyone may ask (load balancers do): say what is wrong, never where (no file path, no host).
    try:
        state.store.ping()
        checks["store"] = {"ok": True, "engine": state.store.engine}
    except WebhookError as exc:  # StoreUnavailable with its reason, or a store the settings cannot open
        checks["store"] = {"ok": False, "engine": state.store.engine, "error": exc.public_message, **exc.details}
    if state.verifier is None:
        checks["signingKeys"] = {"ok": True, "detail": "authentication disabled"}
    else:
        keys = state.verifier.keys
        try:
            snapshot = keys.snapshot or keys.load()
            checks["signingKeys"] = {"ok": True, "keys": len(snapshot.keys)}
        except WebhookError as exc:
            checks["signingKeys"] = {"ok": False, "error": exc.message}
    checks["plugins"] = {"ok": True, "loaded": [plugin.name for plugin in state.plugins]}
    ready = all(check["ok"] for check in checks.values())
    return jsonify({"status": "ready" if ready else "not ready", "checks": checks}), 200 if ready else 503
