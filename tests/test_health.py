"""/healthz and /readyz."""

from __future__ import annotations

from typing import Any

from webhook import create_app
from webhook.testing import LocalGraphKeys

from .support import free_port


def test_healthz(client: Any) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_ready_on_sqlite_with_auth_off(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"]["store"]["ok"] is True


def test_not_ready_when_redis_is_unreachable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    client = create_app({"AUTH": "disabled", "STORE_URL": url, "STORE_TIMEOUT_SECONDS": 0.5}).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not ready"
    assert body["checks"]["store"]["ok"] is False


def test_readiness_fetches_signing_keys_and_reports_when_it_cannot(store_url: str) -> None:
    with LocalGraphKeys() as keys:
        app = create_app({"APP_ID": "bot", "OPENID_CONFIG_URL": keys.config_url, "STORE_URL": store_url})
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 200
        assert ready.get_json()["checks"]["signingKeys"] == {"ok": True, "keys": 1}
        cold = create_app({"APP_ID": "bot", "OPENID_CONFIG_URL": keys.config_url, "STORE_URL": store_url})
    response = cold.test_client().get("/readyz")  # the key server is gone and nothing was ever fetched
    assert response.status_code == 503
    assert response.get_json()["checks"]["signingKeys"]["ok"] is False
