"""A small, synchronous Graph client for acting on calls: app tokens through msal, one pooled HTTP session.

Transport rules, because a repeated POST can answer, play or invite twice:

- every request carries a ``client-request-id`` (logged with the call id and the action);
- a request is sent again only when Graph says it did not process it: 429, 503 or 504 *with* ``Retry-After``,
  and only while the wait still ends before the action's deadline (``answer`` must land within 15 s of the
  incoming call); otherwise the error is raised, typed;
- a connection that fails is never retried: :class:`~webhook.errors.GraphUnreachable` says whether the request
  may have reached Graph;
- ``307``/``308`` are followed with the method and body kept; ``301``/``302``/``303`` are refused (following
  them would turn a POST into a GET).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from . import metrics
from .errors import (
    GraphError,
    GraphNotConfigured,
    GraphUnreachable,
)
from .graph_errors import RETRIED, graph_error, json_of, retry_after_of
from .settings import Settings, default

logger = logging.getLogger("webhook.graph")

SCOPE = "https://graph.microsoft.com/.default"
_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class GraphResponse:
    status: int
    body: Any
    headers: dict[str, str]


class _TrustingAdapter(HTTPAdapter):
    """Verifies certificates against ``ca_bundle`` even where REQUESTS_CA_BUNDLE would override a session's
    own ``verify`` (requests lets the environment win)."""

    def __init__(self, ca_bundle: str | None) -> None:
        super().__init__(pool_connections=4, pool_maxsize=32)
        self.ca_bundle = ca_bundle

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.ca_bundle:
            kwargs["verify"] = self.ca_bundle
        return super().send(request, **kwargs)


class GraphClient:
    """Graph's calls API for one app: ``request`` sends, with the rules above; tokens are per tenant."""

    def __init__(
        self,
        *,
        app_id: str,
        client_secret: str = "",
        certificate_path: str = "",
        certificate_thumbprint: str = "",
        graph_url: str = default("GRAPH_URL"),
        authority_url: str = default("AUTHORITY_URL"),
        ca_bundle: str = "",
        timeout: float = default("GRAPH_TIMEOUT_SECONDS"),
    ) -> None:
        self.app_id, self.graph_url, self.authority_url = app_id, graph_url.rstrip("/"), authority_url.rstrip("/")
        self.timeout = timeout
        self._credential = self._credential_of(client_secret, certificate_path, certificate_thumbprint)
        self.session = requests.Session()
        adapter = _TrustingAdapter(ca_bundle or None)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._apps: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, app_id: str | None = None, client_secret: str | None = None
    ) -> GraphClient:
        """The client of ``WEBHOOK_APP_ID`` (or of ``app_id`` with its ``client_secret``: one of WEBHOOK_APPS)."""
        other = app_id is not None and app_id != settings.app_id
        return cls(
            app_id=app_id if app_id is not None else settings.app_id,
            client_secret=client_secret if client_secret is not None else settings.client_secret,
            certificate_path="" if other else settings.client_certificate_path,
            certificate_thumbprint="" if other else settings.client_certificate_thumbprint,
            graph_url=settings.graph_url,
            authority_url=settings.authority_url,
            ca_bundle=settings.graph_ca_bundle,
            timeout=settings.graph_timeout_seconds,
        )

    @staticmethod
    def _credential_of(secret: str, certificate_path: str, thumbprint: str) -> Any:
        """msal's credential; a :class:`GraphNotConfigured` to raise at the first token, not at start-up: a
        receiver whose handlers never act needs no credentials."""
        if certificate_path:
            if not thumbprint:
                return GraphNotConfigured("WEBHOOK_CLIENT_CERTIFICATE_PATH needs WEBHOOK_CLIENT_CERTIFICATE_THUMBPRINT")
            try:
                with open(certificate_path) as pem:
                    return {"private_key": pem.read(), "thumbprint": thumbprint}
            except OSError as exc:
                return GraphNotConfigured(f"WEBHOOK_CLIENT_CERTIFICATE_PATH: cannot read {certificate_path}: {exc}")
        return secret or None

    @property
    def configured(self) -> bool:
        """Whether the app's credentials are set (an unreadable certificate counts: its error is raised on use)."""
        return bool(self.app_id) and self._credential is not None

    # Tokens

    def token(self, tenant_id: str) -> str:
        """An app-only token for ``tenant_id``, from msal's cache while it is valid."""
        if isinstance(self._credential, GraphNotConfigured):
            raise self._credential
        if not self.app_id or self._credential is None:
            raise GraphNotConfigured(
                "acting on calls needs the app's credentials: set WEBHOOK_APP_ID and WEBHOOK_CLIENT_SECRET "
                "(or WEBHOOK_CLIENT_CERTIFICATE_PATH and WEBHOOK_CLIENT_CERTIFICATE_THUMBPRINT)"
            )
        started = time.perf_counter()
        result = self._app(tenant_id).acquire_token_for_client(scopes=[SCOPE])
        if "access_token" not in result:
            metrics.graph_requests.labels("token", "error").inc()
            raise GraphError(
                f"no app token for tenant {tenant_id}: {result.get('error')}: {result.get('error_description')}",
                graph_code=str(result.get("error") or ""),
                action="token",
            )
        if result.get("token_source") == "identity_provider":
            metrics.graph_seconds.labels("token").observe(time.perf_counter() - started)
        return str(result["access_token"])

    def _app(self, tenant_id: str) -> Any:
        with self._lock:
            app = self._apps.get(tenant_id)
            if app is None:
                import msal  # imported by those who act on calls only

                try:
                    app = msal.ConfidentialClientApplication(
                        self.app_id,
                        client_credential=self._credential,
                        authority=f"{self.authority_url}/{tenant_id}",
                        http_client=self.session,
                        instance_discovery=False,  # the authority is given, not looked up at Microsoft
                    )
                except (ValueError, requests.RequestException) as exc:
                    raise GraphError(
                        f"cannot use the authority {self.authority_url}/{tenant_id}: {exc}", action="token"
                    ) from exc
                self._apps[tenant_id] = app
            return app

    # Requests

    def request(
        self,
        method: str,
        path: str,
        *,
        tenant_id: str,
        action: str,
        call_id: str | None = None,
        body: Any = None,
        deadline: float | None = None,
    ) -> GraphResponse:
        """Send one request to ``graph_url + path``; raise the typed :class:`~webhook.errors.GraphError`s.

        ``deadline`` (``time.monotonic()``) bounds the waits Graph asks for; by default three timeouts from now.
        """
        deadline = deadline if deadline is not None else time.monotonic() + 3 * self.timeout
        request_id = str(uuid.uuid4())
        url = self.graph_url + path
        redirects = 0
        while True:
            headers = {"Authorization": f"Bearer {self.token(tenant_id)}", "client-request-id": request_id}
            response = self._send(method, url, headers, body, action, call_id, request_id)
            status = response.status_code
            if status in (307, 308) and "Location" in response.headers and redirects < _MAX_REDIRECTS:
                redirects += 1
                url = urljoin(url, response.headers["Location"])
                continue
            wait = retry_after_of(response)
            if status in RETRIED and wait is not None and time.monotonic() + wait < deadline:
                metrics.graph_retries.labels(action).inc()
                logger.warning(
                    "Graph answered %s to %s on call %s (client-request-id %s): retrying in %.1fs, as it asks",
                    status,
                    action,
                    call_id,
                    request_id,
                    wait,
                )
                time.sleep(wait)
                continue
            if status >= 300:
                raise graph_error(response, action, call_id, request_id, wait)
            return GraphResponse(status, json_of(response), dict(response.headers))

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Any,
        action: str,
        call_id: str | None,
        request_id: str,
    ) -> requests.Response:
        started = time.perf_counter()
        try:
            response = self.session.request(
                method, url, json=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            metrics.graph_requests.labels(action, "0").inc()
            sent = not isinstance(exc, requests.ConnectTimeout) and "refused" not in str(exc).lower()
            error = GraphUnreachable(
                f"{action} on call {call_id}: no answer from Graph ({exc}); "
                + ("it may have been done: it is not sent again" if sent else "Graph was not reached"),
                action=action,
                client_request_id=request_id,
            )
            error.sent = sent
            raise error from exc
        elapsed = time.perf_counter() - started
        metrics.graph_requests.labels(action, str(response.status_code)).inc()
        metrics.graph_seconds.labels(action).observe(elapsed)
        logger.info(
            "%s %s on call %s: %s in %.0fms (client-request-id %s)",
            method,
            action,
            call_id,
            response.status_code,
            elapsed * 1000,
            request_id,
        )
        return response


def actions_for(call_id: str, tenant_id: str) -> Any:
    """The calls API bound to ``call_id`` in ``tenant_id``, outside a handler (in the app's context): a
    :class:`~webhook.actions.CallActions`."""
    from flask import current_app

    from .http import EXTENSION
    from .resources import canonical_id

    state = current_app.extensions[EXTENSION]
    call_id = canonical_id(call_id)
    # Its history is read only if it is answered; its app says whose credentials act on it.
    return state.delivery.binder.bind(call_id, tenant_id, call=state.store.get(call_id))
