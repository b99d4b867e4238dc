"""Helpers for testing a bot against the real verification path, without Microsoft's servers.

:class:`LocalGraphKeys` makes RSA signing keys, serves an OpenID configuration and its JWKS on 127.0.0.1, and
mints Graph-shaped tokens, so a test can run the receiver with ``AUTH=jwt`` instead of switching auth off::

    with LocalGraphKeys() as keys:
        app = create_app({"APP_ID": "my-bot-id", "OPENID_CONFIG_URL": keys.config_url})
        token = keys.token(aud="my-bot-id", tid="my-tenant")
        app.test_client().post("/api/calls", json=body, headers={"Authorization": f"Bearer {token}"})
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .auth import DEFAULT_ISSUERS

CONFIG_PATH = "/v1/.well-known/OpenIdConfiguration"


def thumbprint(key: rsa.RSAPrivateKey) -> str:
    """The RFC 7638 thumbprint of the key's public half, base64url: a stable kid for a key kept in a file."""
    numbers = key.public_key().public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    canonical = json.dumps({"e": b64(numbers.e), "kty": "RSA", "n": b64(numbers.n)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


JWKS_PATH = "/certs"


class LocalGraphKeys:
    """Signing keys with a local key server. Use as a context manager, or call :meth:`start` / :meth:`stop`.

    ``requests`` counts the HTTP requests the server answered, by path. :meth:`add_key` and
    :meth:`remove_key` rotate the published keys; a stopped server refuses connections (a key-server outage).
    """

    def __init__(self, issuer: str = DEFAULT_ISSUERS[1], *, private_key: rsa.RSAPrivateKey | None = None) -> None:
        self.issuer = issuer
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self._published: set[str] = set()
        self.requests: dict[str, int] = {}
        #: JWKS members published after the signing keys, as given: what a receiver must pass over.
        self.extra_members: list[Any] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._port: int | None = None
        if private_key is None:
            self.kid = self.add_key()
        else:
            self.kid = thumbprint(private_key)
            self._keys[self.kid] = private_key
            self._published.add(self.kid)

    @classmethod
    def from_pem(cls, path: str | Path, issuer: str = DEFAULT_ISSUERS[1]) -> LocalGraphKeys:
        """Keys around an RSA private key kept in a PEM file (its kid: the RFC 7638 thumbprint)."""
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return cls(issuer, private_key=key)

    def save_pem(self, path: str | Path) -> None:
        """Write the current private key as PEM (for ``comms-webhook replay --token-key``)."""
        pem = self.private_key().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        Path(path).write_bytes(pem)

    # Keys

    def add_key(self, kid: str | None = None, *, publish: bool = True) -> str:
        """Make a new RSA key; publish it in the JWKS unless ``publish=False``. Returns its kid."""
        kid = kid or uuid.uuid4().hex
        self._keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self._published.add(kid)
        return kid

    def remove_key(self, kid: str) -> None:
        """Stop publishing ``kid`` (tokens it signs stay mintable, for testing refusal)."""
        self._published.discard(kid)

    def private_key(self, kid: str | None = None) -> rsa.RSAPrivateKey:
        return self._keys[kid or self.kid]

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in sorted(self._published):
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._keys[kid].public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": [*keys, *self.extra_members]}

    def token(
        self,
        *,
        aud: str,
        tid: str | None = "tenant-id",
        iss: str | None = None,
        expires_in: float = 3600,
        not_before: float | None = None,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A token shaped like Graph's: RS256, ``aud``, ``iss``, ``tid``, ``iat``, ``nbf``, ``exp``.

        ``tid=None`` leaves the tenant out; ``claims`` adds or overrides claims (a None value removes one).
        """
        now = time.time()
        payload: dict[str, Any] = {
            "aud": aud,
            "iss": iss or self.issuer,
            "iat": int(now),
            "nbf": int(now if not_before is None else not_before),
            "exp": int(now + expires_in),
            "appid": "00000003-0000-0000-c000-000000000000",  # Microsoft Graph's own app id
        }
        if tid is not None:
            payload["tid"] = tid
        for name, value in (claims or {}).items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        kid = kid or self.kid
        return jwt.encode(payload, self._keys[kid], algorithm="RS256", headers={"kid": kid, **(headers or {})})

    # Server

    @property
    def config_url(self) -> str:
        if self._port is None:
            raise RuntimeError("start() the key server first")
        return f"http://127.0.0.1:{self._port}{CONFIG_PATH}"

    def start(self) -> LocalGraphKeys:
        """Serve on 127.0.0.1 (the same port again after a :meth:`stop`, so a receiver's URL stays valid)."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests[self.path] = owner.requests.get(self.path, 0) + 1
                if self.path == CONFIG_PATH:
                    body: dict[str, Any] = {
                        "issuer": owner.issuer,
                        "jwks_uri": f"http://127.0.0.1:{owner._port}{JWKS_PATH}",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                elif self.path == JWKS_PATH:
                    body = owner.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port or 0), Handler)
        self._port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fetches(self) -> int:
        """How many times the JWKS was fetched."""
        return self.requests.get(JWKS_PATH, 0)

    def __enter__(self) -> LocalGraphKeys:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def __getattr__(name: str) -> Any:
    # webhook.testing.FakeGraph, the fake Graph (webhook.fakegraph, which itself builds on LocalGraphKeys).
    if name in ("FakeGraph", "FakeCall"):
        from . import fakegraph

        return getattr(fakegraph, name)
    raise AttributeError(f"module 'webhook.testing' has no attribute {name!r}")
