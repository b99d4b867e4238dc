"""Verifying that a callback comes from Microsoft Graph, for this bot. Pure: no Flask.

The checks follow the official samples' ``AuthenticationProvider.ValidateInboundRequestAsync`` and are stricter
where that is free: ``Authorization: Bearer <JWT>``; RS256 only, refused before any key is looked up; no key
carried by the token itself (``jwk``, ``jku``, ``x5u``, ``x5c``); a signature by a key from Graph's JWKS;
``aud`` = the bot's App ID; ``iss`` one of the configured issuers; ``exp`` and ``nbf`` with a leeway; a tenant
id (``tid``), optionally from an allow-list.

Each refusal is an :class:`~webhook.errors.AuthError` whose ``details["reason"]`` is one short word (the
receiver counts it in the ``comms_webhook_auth_failures_total`` metric) and whose message says what was wrong
without echoing the token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import jwt

from .errors import AuthError
from .keys import KeyCache
from .notification import Claims
from .settings import default

logger = logging.getLogger("webhook.auth")

DEFAULT_ISSUERS: tuple[str, ...] = default("ISSUERS")
ALLOWED_ALGORITHMS = ("RS256",)
_KEY_BEARING_HEADERS = ("jwk", "jku", "x5u", "x5c")
_MAX_TOKEN_CHARS = 16 * 1024
_VERIFIED_CACHE_SIZE = 256

REASONS = {
    "missing_token": "No Authorization header: Graph sends 'Authorization: Bearer <token>'.",
    "wrong_scheme": "The Authorization header must use the Bearer scheme.",
    "empty_token": "The bearer token is empty.",
    "malformed_token": "The bearer token is not a well-formed JWT.",
    "algorithm_not_allowed": "The token is not signed with RS256, the only algorithm Graph uses.",
    "embedded_key": "The token carries its own key (jwk, jku, x5u or x5c header); only Graph's published keys count.",
    "no_key_id": "The token names no signing key (kid).",
    "unknown_key": "The token is signed by a key that Graph's key set does not list.",
    "bad_signature": "The token's signature does not verify.",
    "expired": "The token has expired.",
    "not_yet_valid": "The token is not valid yet (nbf in the future).",
    "wrong_audience": "The token was issued for another application (aud is not this bot's App ID).",
    "wrong_issuer": "The token was not issued by Microsoft Graph (unexpected iss).",
    "missing_claim": "The token lacks a required claim (exp, aud or iss).",
    "no_tenant": "The token carries no tenant id (tid).",
    "tenant_not_allowed": "The token's tenant is not in WEBHOOK_ALLOWED_TENANTS.",
    "invalid_token": "The token is invalid.",
}


def refuse(reason: str, detail: str = "") -> AuthError:
    message = REASONS[reason] + (f" {detail}" if detail else "")
    return AuthError(message, code="invalid_token", details={"reason": reason})


def _bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if authorization is None:
        raise refuse("missing_token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise refuse("wrong_scheme")
    token = token.strip()
    if not token:
        raise refuse("empty_token")
    return token


class Verifier:
    """Verifies bearer tokens against Graph's keys; thread-safe; one per app."""

    def __init__(
        self,
        app_id: str,
        keys: KeyCache,
        *,
        issuers: Iterable[str] = DEFAULT_ISSUERS,
        allowed_tenants: Iterable[str] = (),
        leeway_seconds: float = default("AUTH_LEEWAY_SECONDS"),
    ) -> None:
        self.app_id = app_id
        self.keys = keys
        self.issuers = tuple(issuers)
        self.allowed_tenants = frozenset(tenant.lower() for tenant in allowed_tenants)
        self.leeway_seconds = leeway_seconds
        # Graph reuses one token for many callbacks: remember the verified ones (by their exact text) until
        # they expire, so each costs one dictionary lookup instead of a signature check.
        self._verified: OrderedDict[str, tuple[str, float, float, Claims]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def verify(self, authorization: str | None) -> Claims:
        """Verify an ``Authorization`` header value; return the sender's claims or raise :class:`AuthError`.

        Raises :class:`~webhook.errors.KeysUnavailable` (503) when the keys cannot be had at all.
        """
        try:
            return self._verify(authorization)
        except AuthError as exc:
            logger.warning("refused a callback: %s", exc.details["reason"])
            raise

    def _verify(self, authorization: str | None) -> Claims:
        token = _bearer_token(authorization)
        cached = self._cached(token)
        if cached is not None:
            return cached
        kid, key = self._signing_key(token)
        claims = self._decode(token, key)
        verified = self._sender(claims)
        self._remember(token, kid, claims, verified)
        return verified

    def _signing_key(self, token: str) -> tuple[str, jwt.PyJWK]:
        """The key the token's header names, once the header is one Graph would send."""
        if len(token) > _MAX_TOKEN_CHARS:
            raise refuse("malformed_token", "It is far longer than any Graph token.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise refuse("malformed_token") from None
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise refuse("algorithm_not_allowed")
        if any(name in header for name in _KEY_BEARING_HEADERS):
            raise refuse("embedded_key")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise refuse("no_key_id")
        key = self.keys.get(kid)
        if key is None:
            raise refuse("unknown_key")
        return kid, key

    def _sender(self, claims: dict[str, Any]) -> Claims:
        """Who sent a verified token: its tenant (required, and allowed), app and issuer."""
        tenant = claims.get("tid")
        if not isinstance(tenant, str) or not tenant:
            raise refuse("no_tenant")
        if self.allowed_tenants and tenant.lower() not in self.allowed_tenants:
            raise refuse("tenant_not_allowed")
        app_id = claims.get("appid") or claims.get("azp")
        return Claims(
            tenant_id=tenant,
            app_id=app_id if isinstance(app_id, str) else None,
            issuer=claims["iss"],
            audience=self.app_id,
        )

    def _cached(self, token: str) -> Claims | None:
        """The claims of a token verified before, if it is still within its validity and its key still listed."""
        with self._verified_lock:
            entry = self._verified.get(token)
        if entry is None:
            return None
        kid, not_before, expires, claims = entry
        now = time.time()
        # keys.get keeps the refresh schedule: a withdrawn key stops its tokens at the next refresh, cached or not.
        if not (not_before - self.leeway_seconds <= now < expires + self.leeway_seconds) or self.keys.get(kid) is None:
            with self._verified_lock:
                self._verified.pop(token, None)
            return None
        return claims

    def _remember(self, token: str, kid: str, claims: dict[str, Any], verified: Claims) -> None:
        not_before = claims.get("nbf")
        entry = (
            kid,
            float(not_before) if isinstance(not_before, (int, float)) else 0.0,
            float(claims["exp"]),
            verified,
        )
        with self._verified_lock:
            self._verified[token] = entry
            while len(self._verified) > _VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=self.app_id,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise refuse("expired") from None
        except jwt.ImmatureSignatureError:
            raise refuse("not_yet_valid") from None
        except jwt.InvalidAudienceError:
            raise refuse("wrong_audience") from None
        except jwt.InvalidSignatureError:
            raise refuse("bad_signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise refuse("missing_claim", f"Missing: {exc.claim}.") from None
        except jwt.PyJWTError:
            raise refuse("invalid_token") from None
        if claims.get("iss") not in self.issuers:
            raise refuse("wrong_issuer")
        return claims
