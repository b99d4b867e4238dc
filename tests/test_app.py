"""create_app and its settings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask

from webhook import ConfigError, create_app
from webhook.app import load_settings
from webhook.http import EXTENSION


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("AUTH", "maybe", "jwt, disabled"),
        ("MAX_BODY_BYTES", "lots", "positive whole number"),
        ("MAX_BODY_BYTES", "0", "positive whole number"),
        ("MAX_BODY_BYTES", "-5", "positive whole number"),
        ("STORE_TIMEOUT_SECONDS", "0", "positive number of seconds"),
        ("STORE_URL", "calls.db", "sqlite:///PATH"),
        ("STORE_URL", "postgres://localhost/x", "unsupported store"),
        ("STORE_URL", "sqlite:///:memory:", "file path"),
        ("AUTH_LEEWAY_SECONDS", "-1", "0 or more"),
        ("OPENID_CONFIG_URL", "ftp://keys", "http(s) URL"),
        ("JWKS_REFRESH_SECONDS", "never", "positive number of seconds"),
        ("STORE_TIMEOUT_SECONDS", "nan", "positive number of seconds"),
        ("PROXY_HOPS", "1.5", "whole number, 0 or more"),
        ("KEEPALIVE_SECONDS", "3000", "at most 2700 (45 minutes: Graph ends a call that long without keepAlive)"),
        ("KEEPALIVE_SECONDS", "3000", "got '3000'; 900 is what Microsoft recommends"),
    ],
)
def test_a_wrong_environment_value_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, accepted: str
) -> None:
    monkeypatch.setenv("WEBHOOK_STORE_URL", f"sqlite:///{tmp_path}/calls.sqlite3")
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    monkeypatch.setenv(f"WEBHOOK_{name}", value)
    with pytest.raises(ConfigError) as info:
        create_app()
    assert f"WEBHOOK_{name}" in info.value.message
    assert accepted in info.value.message


def test_environment_then_mapping(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEBHOOK_STORE_URL", f"sqlite:///{tmp_path}/env.sqlite3")
    monkeypatch.setenv("WEBHOOK_MAX_BODY_BYTES", "2048")
    app = create_app({"AUTH": "disabled", "MAX_BODY_BYTES": 4096})
    settings = app.extensions[EXTENSION].settings
    assert settings.store_url == f"sqlite:///{tmp_path}/env.sqlite3"
    assert settings.max_body_bytes == 4096
    assert (tmp_path / "env.sqlite3").exists()


def test_defaults_auth_jwt_and_sqlite_in_the_instance_folder() -> None:
    app = Flask("webhook", instance_relative_config=True)
    settings = load_settings(app=app)
    assert settings.auth == "jwt"
    assert settings.store_url == f"sqlite:///{Path(app.instance_path) / 'comms-webhook.sqlite3'}"
    assert settings.max_body_bytes == 1024 * 1024


def test_disabled_auth_is_loud_and_a_typo_is_pointed_out(
    monkeypatch: pytest.MonkeyPatch, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WEBHOOK_STOR_URL", "x")
    with caplog.at_level(logging.WARNING, logger="webhook"):
        create_app({"AUTH": "disabled", "STORE_URL": store_url})
    assert "NOT authenticated" in caplog.text
    assert "WEBHOOK_STOR_URL" in caplog.text


def test_secrets_are_masked(store_url: str) -> None:
    settings = (
        create_app({"STORE_URL": store_url, "ADMIN_TOKEN": "s3cret", "APP_ID": "bot"}).extensions[EXTENSION].settings
    )
    assert settings.masked()["ADMIN_TOKEN"] == "***"
    assert "s3cret" not in repr(settings.masked())


def test_a_typo_is_logged_at_start_up_with_the_setting_it_most_likely_meant(
    monkeypatch: pytest.MonkeyPatch, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WEBHOOK_APPID", "bot")
    monkeypatch.setenv("WEBHOOK_NOTHING_LIKE_IT", "x")
    with caplog.at_level(logging.WARNING, logger="webhook"):
        create_app({"AUTH": "disabled", "STORE_URL": store_url})
    assert (
        "WEBHOOK_APPID is set but is not a comms-webhook setting, so it is ignored; did you mean WEBHOOK_APP_ID?"
        in (caplog.text)
    )
    assert (
        "WEBHOOK_NOTHING_LIKE_IT is set but is not a comms-webhook setting, so it is ignored (a typo?)" in caplog.text
    )


@pytest.mark.parametrize("token", ["1e5", "null", "true", "[1]", "007"])
def test_environment_values_are_read_as_the_strings_they_are(
    monkeypatch: pytest.MonkeyPatch, store_url: str, token: str
) -> None:
    monkeypatch.setenv("WEBHOOK_ADMIN_TOKEN", token)  # not 100000.0, None, True, [1] nor 7
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url})
    assert app.extensions[EXTENSION].settings.admin_token == token
    assert app.test_client().get("/api/calls", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_flasks_own_settings_from_the_environment_reach_flask_without_a_warning(
    monkeypatch: pytest.MonkeyPatch, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET_KEY", "sessions-of-a-plugin")
    with caplog.at_level(logging.WARNING, logger="webhook"):
        app = create_app({"AUTH": "disabled", "STORE_URL": store_url})
    assert app.config["SECRET_KEY"] == "sessions-of-a-plugin"
    assert "WEBHOOK_SECRET_KEY" not in caplog.text


def test_the_package_exports_lazily_exactly_what_it_declares() -> None:
    import re
    import subprocess
    import sys

    import webhook

    source = Path(webhook.__file__).read_text()
    typed = set(re.findall(r"(\w+) as \1\b", source.split("if TYPE_CHECKING:", 1)[1].split("__all__", 1)[0]))
    assert typed == set(webhook.__all__)  # what type checkers see is what runs
    for name in webhook.__all__:
        assert getattr(webhook, name) is not None
    probe = (
        "import sys, webhook.model, webhook.schemas, webhook.plain, webhook.parse, webhook.state, webhook.resources, "
        "webhook.codes, webhook.roster, webhook.clock, webhook.codec, webhook.events, webhook.operations, "
        "webhook.timers, webhook.notification, webhook.stored, webhook.answering, webhook.delta\n"
        "web = ('flask', 'werkzeug', 'jwt', 'prometheus_client', 'blinker', 'requests', 'msal', 'redis', 'click')\n"
        "print(sorted(m for m in web if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"  # the pure core imports nothing of the web layer
