"""Graph's JWT on every callback, against a real OpenID configuration and JWKS served on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask

from webhook import ConfigError, create_app
from webhook.builders import envelope, incoming_call, new_id
from webhook.keys import fetch_keys
from webhook.testing import LocalGraphKeys

from .conftest import ADMIN_TOKEN, Recorder
from .support import metric_value

APP_ID = "6f1f5c00-1111-2222-3333-444455556666"
TENANT = "a9c42b85-c133-4aaf-a935-5b4685768b16"


@pytest.fixture
def keys() -> Iterator[LocalGraphKeys]:
    with LocalGraphKeys() as keys:
        yield keys


def jwt_app(keys: LocalGraphKeys, store_url: str, **settings: Any) -> Flask:
    return create_app(
        {
            "APP_ID": APP_ID,
            "OPENID_CONFIG_URL": keys.config_url,
            "STORE_URL": store_url,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            **settings,
        }
    )


def post(app: Flask, authorization: str | None, body: Any = None) -> Any:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return app.test_client().post("/api/calls", json=body or envelope(incoming_call(new_id())), headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def graph_payload() -> dict[str, Any]:
    now = int(time.time())
    return {"aud": APP_ID, "iss": "https://api.botframework.com", "tid": TENANT, "nbf": now, "exp": now + 600}


def test_a_valid_token_passes_and_its_claims_travel_with_the_notification(
    webhook_keys: LocalGraphKeys, store_url: str, recorder: Recorder
) -> None:
    app = jwt_app(webhook_keys, store_url)
    response = post(app, f"Bearer {webhook_keys.token(aud=APP_ID, tid=TENANT)}")
    assert response.status_code == 202
    (notification,) = [kw["notification"] for name, _, kw in recorder.sent if name == "notification_received"]
    assert notification.claims.tenant_id == TENANT
    assert notification.claims.issuer == "https://api.botframework.com"
    assert notification.claims.app_id == "00000003-0000-0000-c000-000000000000"


def test_both_graph_issuers_pass(webhook_keys: LocalGraphKeys, store_url: str) -> None:
    app = jwt_app(webhook_keys, store_url)
    for issuer in ("https://graph.microsoft.com", "https://api.botframework.com"):
        assert post(app, f"Bearer {webhook_keys.token(aud=APP_ID, iss=issuer)}").status_code == 202


def _refusals(keys: LocalGraphKeys) -> list[tuple[str, str | None, str]]:
    attacker = LocalGraphKeys()
    hidden = keys.add_key(publish=False)
    public_pem = (
        keys.private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    hs_signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": keys.kid}, graph_payload())
    hs_signature = b64(hmac.new(public_pem, hs_signing_input.encode(), hashlib.sha256).digest())
    attacker_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.private_key().public_key()))
    return [
        ("no-header", None, "missing_token"),
        ("basic-scheme", "Basic dXNlcjpwYXNz", "wrong_scheme"),
        ("empty-token", "Bearer ", "empty_token"),
        ("malformed", "Bearer not.a.jwt", "malformed_token"),
        ("garbage", "Bearer " + "x" * 40, "malformed_token"),
        (
            "bad-signature",
            "Bearer "
            + jwt.encode(graph_payload(), attacker.private_key(), algorithm="RS256", headers={"kid": keys.kid}),
            "bad_signature",
        ),
        ("key-not-in-jwks", "Bearer " + keys.token(aud=APP_ID, kid=hidden), "unknown_key"),
        ("expired", "Bearer " + keys.token(aud=APP_ID, expires_in=-301 - 60), "expired"),
        ("not-yet-valid", "Bearer " + keys.token(aud=APP_ID, not_before=time.time() + 301 + 60), "not_yet_valid"),
        ("wrong-audience", "Bearer " + keys.token(aud="another-bot"), "wrong_audience"),
        ("wrong-issuer", "Bearer " + keys.token(aud=APP_ID, iss="https://evil.example"), "wrong_issuer"),
        ("no-tid", "Bearer " + keys.token(aud=APP_ID, tid=None), "no_tenant"),
        ("no-exp", "Bearer " + keys.token(aud=APP_ID, claims={"exp": None}), "missing_claim"),
        (
            "alg-none",
            "Bearer " + unsigned({"alg": "none", "kid": keys.kid}, graph_payload()) + ".",
            "algorithm_not_allowed",
        ),
        ("hs256-key-confusion", f"Bearer {hs_signing_input}.{hs_signature}", "algorithm_not_allowed"),
        (
            "embedded-jwk",
            "Bearer "
            + jwt.encode(
                graph_payload(),
                attacker.private_key(),
                algorithm="RS256",
                headers={"kid": attacker.kid, "jwk": attacker_jwk},
            ),
            "embedded_key",
        ),
        (
            "jku-header",
            "Bearer "
            + jwt.encode(
                graph_payload(),
                attacker.private_key(),
                algorithm="RS256",
                headers={"kid": keys.kid, "jku": "https://evil.example/keys"},
            ),
            "embedded_key",
        ),
        ("no-kid", "Bearer " + jwt.encode(graph_payload(), keys.private_key(), algorithm="RS256"), "no_key_id"),
    ]


REFUSAL_IDS = [r[0] for r in _refusals(LocalGraphKeys())]


@pytest.mark.parametrize("case", REFUSAL_IDS)
def test_each_bad_token_is_refused_with_401_and_its_reason(
    webhook_keys: LocalGraphKeys, store_url: str, recorder: Recorder, case: str
) -> None:
    (_, authorization, reason) = next(r for r in _refusals(webhook_keys) if r[0] == case)
    app = jwt_app(webhook_keys, store_url)
    call_id = new_id()
    counted = metric_value("auth_failures_total", reason=reason)
    response = post(app, authorization, envelope(incoming_call(call_id)))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    error = response.get_json()
    assert error["error"] == "invalid_token"
    assert error["details"] == {"reason": reason}
    token = (authorization or "").partition(" ")[2]
    if len(token) > 8:
        assert token not in response.get_data(as_text=True)
    assert recorder.sent == []
    assert metric_value("auth_failures_total", reason=reason) - counted == 1
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert app.test_client().get(f"/api/calls/{call_id}", headers=admin).status_code == 404


def test_a_tenant_outside_the_allow_list_is_refused(webhook_keys: LocalGraphKeys, store_url: str) -> None:
    app = jwt_app(webhook_keys, store_url, ALLOWED_TENANTS=f"{TENANT}, other-tenant")
    assert post(app, f"Bearer {webhook_keys.token(aud=APP_ID, tid=TENANT.upper())}").status_code == 202
    response = post(app, f"Bearer {webhook_keys.token(aud=APP_ID, tid='intruder-tenant')}")
    assert response.status_code == 401
    assert response.get_json()["details"] == {"reason": "tenant_not_allowed"}


def test_leeway_accepts_a_token_just_expired(webhook_keys: LocalGraphKeys, store_url: str) -> None:
    app = jwt_app(webhook_keys, store_url)
    assert post(app, f"Bearer {webhook_keys.token(aud=APP_ID, expires_in=-60)}").status_code == 202
    strict = jwt_app(webhook_keys, store_url, AUTH_LEEWAY_SECONDS=0)
    assert post(strict, f"Bearer {webhook_keys.token(aud=APP_ID, expires_in=-60)}").status_code == 401


def test_jwt_mode_without_app_id_refuses_to_start(store_url: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_app({"STORE_URL": store_url})
    assert "WEBHOOK_APP_ID" in info.value.message


def test_key_rotation_without_restart(keys: LocalGraphKeys, store_url: str) -> None:
    app = jwt_app(keys, store_url, JWKS_REFRESH_SECONDS=0.5, JWKS_MIN_REFETCH_SECONDS=0.2)
    old = keys.kid
    assert post(app, f"Bearer {keys.token(aud=APP_ID)}").status_code == 202
    new = keys.add_key()
    time.sleep(0.25)  # past the refetch floor: an unknown kid may trigger one fetch
    assert post(app, f"Bearer {keys.token(aud=APP_ID, kid=new)}").status_code == 202
    keys.remove_key(old)
    time.sleep(0.6)  # past the refresh interval
    refused = post(app, f"Bearer {keys.token(aud=APP_ID, kid=old)}")
    assert refused.status_code == 401
    assert refused.get_json()["details"] == {"reason": "unknown_key"}
    assert post(app, f"Bearer {keys.token(aud=APP_ID, kid=new)}").status_code == 202


def test_key_server_outage_keeps_cached_keys(keys: LocalGraphKeys, store_url: str) -> None:
    app = jwt_app(keys, store_url, JWKS_REFRESH_SECONDS=0.2, JWKS_MIN_REFETCH_SECONDS=0.1)
    assert post(app, f"Bearer {keys.token(aud=APP_ID)}").status_code == 202
    keys.stop()
    time.sleep(0.3)  # a refresh is due and will fail
    assert post(app, f"Bearer {keys.token(aud=APP_ID)}").status_code == 202
    assert post(app, f"Bearer {keys.token(aud=APP_ID)}").status_code == 202


def test_cold_start_with_the_key_server_down_answers_503(
    keys: LocalGraphKeys, store_url: str, recorder: Recorder
) -> None:
    app = jwt_app(keys, store_url)
    keys.stop()
    response = post(app, f"Bearer {keys.token(aud=APP_ID)}")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.get_json()["error"] == "signing_keys_unavailable"
    assert recorder.sent == []
    keys.start()  # the same port again; the next attempt after the refetch floor succeeds
    assert post(app, f"Bearer {keys.token(aud=APP_ID)}").status_code == 503  # within the floor: no hammering


def test_only_the_rsa_signing_keys_of_the_jwks_are_kept(keys: LocalGraphKeys, store_url: str) -> None:
    other = LocalGraphKeys()
    rsa_member = other.jwks()["keys"][0]
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys.extra_members = [
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-key", "use": "sig"},
        {**rsa_member, "kid": "encryption-key", "use": "enc"},
        {key: value for key, value in rsa_member.items() if key != "kid"},
        {**rsa_member, "kid": "broken-key", "n": 12345},
        "not a key",
    ]
    snapshot = fetch_keys(keys.config_url)
    assert list(snapshot.keys) == [keys.kid]
    assert [entry["kid"] for entry in snapshot.raw_keys] == [keys.kid]
    app = jwt_app(keys, store_url)
    assert post(app, f"Bearer {keys.token(aud=APP_ID)}").status_code == 202
    encryption_signed = jwt.encode(
        graph_payload(), other.private_key(), algorithm="RS256", headers={"kid": "encryption-key"}
    )
    assert post(app, f"Bearer {encryption_signed}").status_code == 401


def test_200_unknown_kids_cause_at_most_one_fetch(keys: LocalGraphKeys, store_url: str) -> None:
    app = jwt_app(keys, store_url)
    assert post(app, f"Bearer {keys.token(aud=APP_ID)}").status_code == 202
    before = keys.fetches()
    attacker = LocalGraphKeys()
    client = app.test_client()
    for _ in range(200):
        kid = uuid.uuid4().hex
        token = jwt.encode(graph_payload(), attacker.private_key(), algorithm="RS256", headers={"kid": kid})
        response = client.post(
            "/api/calls", json=envelope(incoming_call(new_id())), headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
    assert keys.fetches() - before <= 1


class ExplodingStream:
    """A request body that fails the test if anything reads it."""

    def read(self, *args: Any) -> bytes:
        raise AssertionError("the body was read before the token was checked")

    readline = readinto = read


def post_unreadable(app: Flask, authorization: str) -> Any:
    """POST a 10 MB body (by its Content-Length) that fails the test if anything reads it."""
    environ = {
        "wsgi.input": ExplodingStream(),
        "CONTENT_LENGTH": str(10 * 1024 * 1024),
        "CONTENT_TYPE": "application/json",
    }
    return app.test_client().post("/api/calls", headers={"Authorization": authorization}, environ_overrides=environ)


def test_auth_runs_before_the_body_is_read(webhook_keys: LocalGraphKeys, store_url: str) -> None:
    app = jwt_app(webhook_keys, store_url)
    assert post_unreadable(app, "Bearer forged.token.here").status_code == 401
    assert post_unreadable(app, f"Bearer {webhook_keys.token(aud=APP_ID)}").status_code == 413


def test_a_remembered_token_still_expires(webhook_keys: LocalGraphKeys, store_url: str) -> None:
    app = jwt_app(webhook_keys, store_url, AUTH_LEEWAY_SECONDS=0)
    token = webhook_keys.token(aud=APP_ID, expires_in=1.5)
    assert post(app, f"Bearer {token}").status_code == 202
    assert post(app, f"Bearer {token}").status_code == 202  # from the cache of verified tokens
    time.sleep(1.6)
    refused = post(app, f"Bearer {token}")
    assert refused.status_code == 401
    assert refused.get_json()["details"] == {"reason": "expired"}


def test_a_remembered_token_stops_passing_when_its_key_is_withdrawn(keys: LocalGraphKeys, store_url: str) -> None:
    app = jwt_app(keys, store_url, JWKS_REFRESH_SECONDS=0.3, JWKS_MIN_REFETCH_SECONDS=0.1)
    token = keys.token(aud=APP_ID)
    assert post(app, f"Bearer {token}").status_code == 202
    new = keys.add_key()
    keys.remove_key(keys.kid)
    time.sleep(0.4)
    assert post(app, f"Bearer {keys.token(aud=APP_ID, kid=new)}").status_code == 202  # refreshes the keys
    assert post(app, f"Bearer {token}").status_code == 401
