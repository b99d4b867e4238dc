"""The fake Graph over HTTP: routing a request to what it asks for, and answering as Microsoft's servers do."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from ..builders import JSON
from .calls import GraphError

if TYPE_CHECKING:
    from . import FakeGraph

STATUS_CODES = {
    403: "Forbidden",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def aad_error(code: str, description: str) -> JSON:
    return {"error": code, "error_description": description, "error_codes": [int(description[6:].split(":")[0])]}


def graph_error(exc: GraphError, headers: Any) -> JSON:
    inner = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "request-id": str(uuid.uuid4())}
    if headers.get("client-request-id"):
        inner["client-request-id"] = headers.get("client-request-id")
    return {"error": {"code": exc.code, "message": exc.message, "innerError": inner}}


def route(method: str, path: str) -> tuple[str, str | None]:
    """What a Graph request is: (``answer``/``playPrompt``/.../``get``/``participants``/``delete``, call id)."""
    parts = urllib.parse.urlsplit(path).path.strip("/").split("/")
    if parts[:3] != ["v1.0", "communications", "calls"] or len(parts) < 4:
        return "unknown", None
    call_id, rest = parts[3], "/".join(parts[4:])
    if method == "GET":
        return ("get" if not rest else "participants" if rest == "participants" else "unknown"), call_id
    if method == "DELETE":
        return ("delete" if not rest else "unknown"), call_id
    return (rest if method == "POST" and rest else "unknown"), call_id


def _openid_configuration(base: str) -> JSON:
    """The tenant's OpenID configuration, as Entra ID publishes it at ``{base}/v2.0/.well-known/...``."""
    return {
        "issuer": f"{base}/v2.0",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "token"],
    }


class _Handler(BaseHTTPRequestHandler):
    """Graph's side of HTTP, for :attr:`fake` (set by :func:`handler`)."""

    protocol_version = "HTTP/1.1"
    fake: FakeGraph

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            base = f"{self.fake.url}/{parts[0]}"
            self._answer(
                200,
                {
                    "issuer": f"{base}/v2.0",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "response_types_supported": ["code", "id_token", "token"],
                },
            )
            return
        self._graph("GET", None)

    def do_DELETE(self) -> None:
        self._graph("DELETE", None)

    def do_POST(self) -> None:
        raw = self._body()
        parts = self.path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            form = dict(urllib.parse.parse_qsl(raw.decode()))
            self._answer(*self.fake.token_request(self.path, parts[0], self.headers, form))
            return
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            self._answer(400, {"error": {"code": "BadRequest", "message": "The body is not JSON."}})
            return
        self._graph("POST", body)

    def _graph(self, method: str, body: Any) -> None:
        try:
            status, answer, headers = self.fake.handle(method, self.path, self.headers, body)
        except ConnectionAbortedError:
            self.close_connection = True
            self.connection.close()  # processed, never answered
            return
        self._answer(status, answer, headers)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def handler(fake: FakeGraph) -> type[BaseHTTPRequestHandler]:
    """The request handler class of the HTTP server in front of ``fake``."""
    return type("Handler", (_Handler,), {"fake": fake})
