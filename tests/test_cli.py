"""The comms-webhook command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from webhook.builders import call_ended, envelope, incoming_call, new_id
from webhook.cli import main
from webhook.testing import LocalGraphKeys

from .support import free_port


@pytest.fixture
def stored_calls(monkeypatch: pytest.MonkeyPatch, store_url: str, poster: Any) -> list[str]:
    monkeypatch.setenv("WEBHOOK_STORE_URL", store_url)
    ids = [new_id(), new_id()]
    poster(envelope(incoming_call(ids[0])))
    poster(envelope(incoming_call(ids[1])))
    poster(envelope(call_ended(ids[1])))
    return ids


def test_calls_lists_the_store_and_filters_by_state(
    stored_calls: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calls"]) == 0
    out = capsys.readouterr().out
    assert stored_calls[0] in out and stored_calls[1] in out
    assert main(["calls", "--state", "terminated", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in listed] == [stored_calls[1]]
    assert listed[0]["endReason"] == "The call ended."


def test_call_prints_one_call_or_fails(stored_calls: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", stored_calls[0].upper()]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "incoming"
    assert main(["call", new_id()]) == 1


def test_a_bad_setting_is_one_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_AUTH", "sometimes")
    assert main(["serve"]) == 2
    assert "WEBHOOK_AUTH must be one of jwt, disabled" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_starts_gunicorn_on_sqlite(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_ADMIN_TOKEN": "t",
        "WEBHOOK_STORE_URL": f"sqlite:///{tmp_path}/calls.sqlite3",
    }
    command = [sys.executable, "-m", "webhook.cli", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    call_id = new_id()
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/calls",
            data=json.dumps(envelope(incoming_call(call_id))).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        status = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    status = response.status
                break
            except OSError:
                time.sleep(0.1)
        assert status == 202
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert "NOT authenticated" in output
    assert "Booting worker" in output


def test_check_auth_prints_the_keys_or_what_went_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with LocalGraphKeys() as keys:
        monkeypatch.setenv("WEBHOOK_OPENID_CONFIG_URL", keys.config_url)
        assert main(["check-auth"]) == 0
        out = capsys.readouterr().out
        assert f"kid={keys.kid}" in out
        assert "https://api.botframework.com" in out
    assert main(["check-auth"]) == 1
    assert "cannot fetch the signing keys" in capsys.readouterr().err


def test_serve_refuses_a_broken_plugin_before_starting_gunicorn(
    monkeypatch: pytest.MonkeyPatch, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    monkeypatch.setenv("WEBHOOK_STORE_URL", store_url)
    monkeypatch.setenv("WEBHOOK_PLUGINS", "no_such_bot_module")
    assert main(["serve"]) == 2
    assert "plugin 'no_such_bot_module'" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_starts_while_the_store_is_unreachable_and_never_prints_its_password(tmp_path: Path) -> None:
    port, password = free_port(), "s3cret-Redis-pw"
    env = {
        **os.environ,
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": f"redis://:{password}@127.0.0.1:{free_port()}/0",  # nothing listens there
        "WEBHOOK_STORE_TIMEOUT_SECONDS": "0.5",
        "WEBHOOK_JOURNAL_DIR": str(tmp_path / "journal"),
    }
    command = [sys.executable, "-m", "webhook.cli", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        status = None
        for _ in range(100):
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/calls",
                    data=json.dumps(envelope(incoming_call(new_id()))).encode(),
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError as exc:
                status = exc.code
                break
            except OSError:
                time.sleep(0.1)
        assert status == 503  # the workers booted; the store answers once Redis does
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert f"store redis://:***@127.0.0.1:{env['WEBHOOK_STORE_URL'].rsplit(':', 1)[1]}" in output
    assert password not in output
