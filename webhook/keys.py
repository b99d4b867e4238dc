"""Graph's signing keys: fetched from the OpenID configuration, cached per worker, refreshed safely.

Graph signs its callbacks with keys listed by the JWKS that the OpenID configuration at
``https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration`` names (the discovery URL is not derived from
the issuer). PyJWT's ``PyJWKClient`` (since 2.10) keeps its cached set when a fetch fails and refetches for an
unknown ``kid`` at most once per cooldown, but it takes a JWKS URL rather than a discovery document, starts its
cooldown only after a *successful* fetch (with the key server down, every expired-cache request and every
unknown ``kid`` tries again, each waiting for the timeout), and reads documents of any size. :class:`KeyCache`
adds, on top of PyJWT's own parsing (``PyJWKSet``):

- discovery: the OpenID configuration first, then the JWKS it names (and its ``issuer``), both size-limited;
- a refresh every ``refresh_seconds``, keeping the last good keys when it fails;
- at most one attempt per ``min_refetch_seconds``, failed or not, whatever the number of made-up kids;
- :class:`~webhook.errors.KeysUnavailable` only when it has never had keys and cannot get them (the token may
  be fine: the caller should answer 503, not 401).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

from .errors import KeysUnavailable
from .settings import default

logger = logging.getLogger("webhook.keys")

GRAPH_OPENID_CONFIG_URL: str = default("OPENID_CONFIG_URL")
_MAX_DOCUMENT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class KeySnapshot:
    """What one successful fetch found."""

    issuer: str | None
    jwks_uri: str
    keys: dict[str, jwt.PyJWK]
    fetched_at: float
    raw_keys: list[dict[str, Any]] = field(default_factory=list)


def _get_json(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "comms-webhook"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = response.read(_MAX_DOCUMENT_BYTES + 1)
    if len(data) > _MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {_MAX_DOCUMENT_BYTES} bytes")
    return json.loads(data)


def fetch_keys(
    config_url: str,
    *,
    timeout: float = default("KEY_FETCH_TIMEOUT_SECONDS"),
    clock: Callable[[], float] = time.monotonic,
) -> KeySnapshot:
    """Fetch the OpenID configuration, then its JWKS; keep the RSA signing keys that have a ``kid``.

    Raises ``OSError`` (unreachable, timeout, HTTP error) or ``ValueError`` (not a usable document).
    """
    config = _get_json(config_url, timeout)
    if not isinstance(config, dict) or not isinstance(config.get("jwks_uri"), str):
        raise ValueError(f"{config_url} is not an OpenID configuration: it has no jwks_uri")
    jwks = _get_json(config["jwks_uri"], timeout)
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError(f"{config['jwks_uri']} is not a JWKS: it has no keys list")
    try:
        key_set = jwt.PyJWKSet.from_dict(jwks)  # skips the members it cannot use
    except jwt.PyJWTError as exc:
        raise ValueError(f"{config['jwks_uri']} lists no usable key: {exc}") from None
    by_kid = {str(entry["kid"]): entry for entry in jwks["keys"] if isinstance(entry, dict) and entry.get("kid")}
    keys: dict[str, jwt.PyJWK] = {}
    for key in key_set.keys:
        if key.key_type == "RSA" and key.key_id and key.public_key_use in (None, "sig"):
            keys[key.key_id] = key
    raw_keys = [by_kid[kid] for kid in keys]
    if skipped := sorted(set(by_kid) - set(keys)):
        logger.warning("skipping %d key(s) that are not usable RSA signing keys: %s", len(skipped), skipped)
    if not keys:
        raise ValueError(f"{config['jwks_uri']} lists no usable RSA signing key")
    issuer = config.get("issuer") if isinstance(config.get("issuer"), str) else None
    return KeySnapshot(issuer, config["jwks_uri"], keys, clock(), raw_keys)


class KeyCache:
    """Thread-safe, per-process cache of the signing keys (see the module docstring for the rules)."""

    def __init__(
        self,
        config_url: str = GRAPH_OPENID_CONFIG_URL,
        *,
        refresh_seconds: float = default("JWKS_REFRESH_SECONDS"),
        min_refetch_seconds: float = default("JWKS_MIN_REFETCH_SECONDS"),
        timeout: float = default("KEY_FETCH_TIMEOUT_SECONDS"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config_url = config_url
        self.refresh_seconds = refresh_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.timeout = timeout
        self.clock = clock
        self.snapshot: KeySnapshot | None = None
        self._last_attempt: float | None = None
        self._lock = threading.Lock()

    def get(self, kid: str) -> jwt.PyJWK | None:
        """The key with this ``kid``, or None when the key server does not list it.

        Raises :class:`KeysUnavailable` when no key was ever fetched and fetching fails now.
        """
        snapshot = self.snapshot
        now = self.clock()
        if snapshot is None or now - snapshot.fetched_at >= self.refresh_seconds:
            snapshot = self._refresh(reason="first use" if snapshot is None else "refresh due")
        elif kid not in snapshot.keys:
            snapshot = self._refresh(reason=f"unknown kid {kid[:64]!r}")
        if snapshot is None:
            raise KeysUnavailable(
                f"Graph's signing keys could not be fetched from {self.config_url}; retry shortly.",
            )
        return snapshot.keys.get(kid)

    def load(self) -> KeySnapshot:
        """The current keys, fetched now if there are none (within the refetch limit); for readiness checks."""
        snapshot = self.snapshot or self._refresh(reason="readiness check")
        if snapshot is None:
            raise KeysUnavailable(f"Graph's signing keys could not be fetched from {self.config_url}.")
        return snapshot

    def _refresh(self, *, reason: str) -> KeySnapshot | None:
        with self._lock:
            now = self.clock()
            current = self.snapshot
            # Another thread may have refreshed while this one waited for the lock.
            fresh = current is not None and now - current.fetched_at < self.min_refetch_seconds
            recently_tried = self._last_attempt is not None and now - self._last_attempt < self.min_refetch_seconds
            if fresh or recently_tried:
                return current
            self._last_attempt = now
            try:
                self.snapshot = fetch_keys(self.config_url, timeout=self.timeout, clock=self.clock)
            except (OSError, ValueError) as exc:
                if current is None:
                    logger.error("cannot fetch Graph's signing keys (%s) from %s: %s", reason, self.config_url, exc)
                else:
                    logger.warning("key refresh (%s) failed, keeping the last good keys: %s", reason, exc)
                return current
            logger.info("fetched %d signing keys (%s)", len(self.snapshot.keys), reason)
            return self.snapshot
