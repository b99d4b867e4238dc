"""The fake Graph's token endpoint, as Microsoft's identity platform answers a bot's client (client credentials
for ``https://graph.microsoft.com/.default``), and the check of those tokens on every request to the calls API."""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..builders import JSON
from .calls import FakeCall, GraphError, RecordedRequest
from .server import aad_error

SCOPE = "https://graph.microsoft.com/.default"


@dataclass
class IssuedToken:
    tenant_id: str
    expires_at: float
    app_id: str = ""


class TokenEndpoint:
    """App tokens issued and checked by :class:`~webhook.fakegraph.FakeGraph` (a part of it)."""

    # Kept by FakeGraph, which this is a part of.
    _lock: threading.RLock
    _tokens: dict[str, IssuedToken]
    requests: list[RecordedRequest]
    app_id: str
    client_secret: str
    apps: dict[str, str]
    tenant_id: str

    @property
    def authority_url(self) -> str:
        raise NotImplementedError

    @property
    def ca_bundle(self) -> str | None:
        raise NotImplementedError

    def _injected(self, action: str) -> GraphError | None:
        raise NotImplementedError

    def app_token(self, tenant_id: str | None = None) -> str:
        """An app-only token for ``tenant_id``, asked of this fake's token endpoint as a bot's client would
        (client credentials, over HTTP): for a test's own Graph requests."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.app_id,
            "client_secret": self.client_secret,
            "scope": SCOPE,
        }
        request = urllib.request.Request(
            f"{self.authority_url}/{tenant_id or self.tenant_id}/oauth2/v2.0/token",
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
        )
        context = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else None
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return str(json.loads(response.read())["access_token"])

    def _token(self, tenant_id: str, form: dict[str, str]) -> tuple[int, JSON]:
        if form.get("grant_type") != "client_credentials":
            return 400, aad_error("unsupported_grant_type", "AADSTS70003: grant_type must be client_credentials.")
        secrets_by_app = {**self.apps, self.app_id: self.client_secret}
        client_id = str(form.get("client_id"))
        if client_id not in secrets_by_app:
            return 400, aad_error("unauthorized_client", f"AADSTS700016: Application {client_id} not found.")
        if form.get("client_secret") != secrets_by_app[client_id] and not form.get("client_assertion"):
            return 401, aad_error("invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if form.get("scope") != SCOPE:
            return 400, aad_error("invalid_scope", f"AADSTS1002012: The scope must be {SCOPE}.")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = IssuedToken(tenant_id, time.time() + 3599, client_id)
        return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}

    def token_request(
        self, path: str, tenant_id: str, headers: Any, form: dict[str, str]
    ) -> tuple[int, JSON, dict[str, str]]:
        """Answer one request of the token endpoint (recorded as action ``token``): status, body, headers."""
        record = RecordedRequest("POST", path, "token", None, dict(headers.items()), form)
        with self._lock:
            self.requests.append(record)
        injected = self._injected("token")
        if injected is not None:
            record.status = injected.status
            return injected.status, aad_error("temporarily_unavailable", "AADSTS90033: injected."), injected.headers
        record.status, body = self._token(tenant_id, form)
        return record.status, body, {}

    def _authorize(self, headers: Any, call: FakeCall | None) -> None:
        scheme, _, token = str(headers.get("Authorization", "")).partition(" ")
        issued = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if issued is None or issued.expires_at < time.time():
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token is empty or was not issued by this Graph."
            )
        if call is not None and issued.tenant_id != call.tenant_id:
            raise GraphError(
                403, "Forbidden", f"The token is for tenant {issued.tenant_id}, the call is in {call.tenant_id}."
            )
        if call is not None and issued.app_id != (call.app_id or self.app_id):
            raise GraphError(
                403,
                "Forbidden",
                f"The token is for app {issued.app_id}, the call is app {call.app_id or self.app_id}'s.",
            )
