"""What an operator relies on: the Procfile as written, health, metrics across workers, logs, stale calls."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from webhook import create_app, on
from webhook.builders import call_notification, envelope, incoming_call, new_id
from webhook.cli import main
from webhook.http import EXTENSION
from webhook.simulate import send_all
from webhook.testing import LocalGraphKeys

from .conftest import ADMIN_TOKEN
from .support import ROOT, free_port, store_of

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{(?P<labels>[^}}]*)\}})? (?P<value>\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match["value"])
    return total


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
def test_the_procfile_as_written_boots_two_workers_whose_counters_add_up(tmp_path: Path) -> None:
    (line,) = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")]
    command = line.removeprefix("web:").strip()
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
        "WEBHOOK_STORE_URL": f"sqlite:///{tmp_path / 'calls.sqlite3'}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    log = (tmp_path / "procfile.log").open("wb")
    process = subprocess.Popen(shlex.split(command), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while get_or_none(base + "/healthz") != 200:
            assert process.poll() is None, (tmp_path / "procfile.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        calls = [new_id() for _ in range(60)]
        bodies = [envelope(incoming_call(c)) for c in calls] + [
            envelope(call_notification(c, "established")) for c in calls
        ]
        assert send_all(base + "/api/calls", bodies, concurrency=8) == [202] * len(bodies)
        assert send_all(base + "/api/calls", [{"value": []}] * 5, concurrency=2) == [400] * 5
        assert get(base + "/healthz")[0] == 200
        status, ready = get(base + "/readyz")
        assert status == 200, ready
        assert get(base + "/metrics")[0] == 401  # protected by the admin token
        for _ in range(4):  # whichever worker answers, the counts are everyone's
            status, text = get(base + "/metrics", ADMIN)
            assert status == 200
            assert metric(text, "comms_webhook_notifications_total") == len(bodies)
            assert metric(text, "comms_webhook_transitions_total", state="established") == len(calls)
            assert metric(text, "comms_webhook_rejections_total", reason="invalid_payload") == 5
            assert metric(text, "comms_webhook_active_calls") == len(calls)
            assert (
                metric(text, "comms_webhook_request_duration_seconds_count", endpoint="/api/calls") == len(bodies) + 5
            )
        counters = list((tmp_path / "metrics").glob("counter_*.db"))
        assert len(counters) >= 2, "both workers should have counted"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
    assert process.returncode == 0


def get_or_none(url: str) -> int | None:
    try:
        return get(url)[0]
    except OSError:
        return None


def test_metrics_count_refusals_and_auth_failures(store_url: str) -> None:
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "METRICS_TOKEN": "scrape"})
    client = app.test_client()
    before = client.get("/metrics", headers={"Authorization": "Bearer scrape"}).get_data(as_text=True)
    client.post("/api/calls", data="{", content_type="application/json")
    client.post("/api/calls", data="{}", content_type="text/plain")
    after = client.get("/metrics", headers={"Authorization": "Bearer scrape"}).get_data(as_text=True)
    for reason in ("malformed_json", "unsupported_media_type"):
        name = "comms_webhook_rejections_total"
        assert metric(after, name, reason=reason) - metric(before, name, reason=reason) == 1
    assert client.get("/metrics").status_code == 401


def test_logs_one_json_line_per_request_and_per_transition_never_a_token(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from webhook.testing import LocalGraphKeys

    headers = {"Scenario-Id": "scn-1", "Client-Request-Id": "crq-1", "X-Microsoft-Skype-Chain-ID": "chain-1"}
    with LocalGraphKeys() as keys, caplog.at_level(logging.INFO, logger="webhook"):
        app = create_app({"APP_ID": "bot", "OPENID_CONFIG_URL": keys.config_url, "STORE_URL": store_url})
        token = keys.token(aud="bot", tid="tenant-9")
        call_id = new_id()
        response = app.test_client().post(
            "/api/calls", json=envelope(incoming_call(call_id)), headers={"Authorization": f"Bearer {token}", **headers}
        )
        assert response.status_code == 202
    access = [r for r in caplog.records if r.name == "webhook.access"]
    transition = [r for r in caplog.records if r.name == "webhook.transitions"]
    assert len(access) == 1 and len(transition) == 1
    expected_access = {"status": 202, "tenant": "tenant-9", "callIds": [call_id], **headers}
    assert access[0].fields.items() >= expected_access.items()  # type: ignore[attr-defined]
    expected_transition = {"callId": call_id, "from": None, "to": "incoming", "tenant": "tenant-9", **headers}
    assert transition[0].fields.items() >= expected_transition.items()  # type: ignore[attr-defined]
    from webhook.logs import JsonFormatter

    rendered = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    assert rendered[-1]["logger"] in {"webhook.access", "webhook.transitions"}
    assert token not in caplog.text and "Bearer" not in caplog.text
    assert not any(token in json.dumps(line) for line in rendered)


@pytest.mark.parametrize(("hops", "seen"), [(0, "127.0.0.1"), (1, "203.0.113.7")])
def test_proxy_hops_decide_whose_address_is_believed(
    store_url: str, caplog: pytest.LogCaptureFixture, hops: int, seen: str
) -> None:
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "PROXY_HOPS": hops})
    with caplog.at_level(logging.INFO, logger="webhook.access"):
        app.test_client().get("/healthz", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
    (record,) = [r for r in caplog.records if r.name == "webhook.access"]
    assert record.fields["remoteAddr"] == seen  # type: ignore[attr-defined]


def test_a_quiet_call_is_marked_stale_once_and_cleared_by_a_late_notification(
    any_store_settings: dict[str, str], recorder: Any
) -> None:
    app = create_app(
        {
            "AUTH": "disabled",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "STALE_AFTER_SECONDS": 0.3,
            "OUTBOX_SWEEP_SECONDS": 0,
            **any_store_settings,
        }
    )
    client = app.test_client()
    sweeper = app.extensions[EXTENSION].sweeper
    quiet, ended, busy = new_id(), new_id(), new_id()
    for call_id in (quiet, ended, busy):
        client.post("/api/calls", json=envelope(incoming_call(call_id)))
    client.post("/api/calls", json=envelope(call_notification(ended, change_type="deleted")))
    time.sleep(0.4)
    client.post("/api/calls", json=envelope(call_notification(busy, "established")))
    assert len(sweeper.mark_stale_calls()) == 1
    assert sweeper.mark_stale_calls() == []  # once
    assert [kw["call"].id for name, _, kw in recorder.sent if name == "call_stale"] == [quiet]
    doc = client.get(f"/api/calls/{quiet}", headers=ADMIN).get_json()
    assert doc["staleSince"] is not None
    text = client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    assert metric(text, "comms_webhook_stale_calls") == 1
    client.post("/api/calls", json=envelope(call_notification(quiet, "established")))
    assert client.get(f"/api/calls/{quiet}", headers=ADMIN).get_json()["staleSince"] is None
    assert metric(client.get("/metrics", headers=ADMIN).get_data(as_text=True), "comms_webhook_stale_calls") == 0


def test_of_many_sweepers_one_marks_each_quiet_call(any_store_settings: dict[str, str], recorder: Any) -> None:
    settings = {"AUTH": "disabled", "STALE_AFTER_SECONDS": 0.2, "OUTBOX_SWEEP_SECONDS": 0, **any_store_settings}
    apps = [create_app(settings) for _ in range(6)]
    ids = [new_id() for _ in range(20)]
    for call_id in ids:
        apps[0].test_client().post("/api/calls", json=envelope(incoming_call(call_id)))
    time.sleep(0.3)
    start = threading.Barrier(len(apps))

    def sweep(app: Any) -> None:
        start.wait()
        app.extensions[EXTENSION].sweeper.mark_stale_calls()

    threads = [threading.Thread(target=sweep, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stale = Counter(kw["call"].id for name, _, kw in recorder.sent if name == "call_stale")
    assert stale == {call_id: 1 for call_id in ids}
    assert store_of(settings).count_calls("stale") == len(ids)


def test_check_config_prints_masked_settings_and_problems(
    monkeypatch: pytest.MonkeyPatch, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_STORE_URL", store_url)
    monkeypatch.setenv("WEBHOOK_ADMIN_TOKEN", "very-secret")
    monkeypatch.setenv("WEBHOOK_OPENID_CONFIG_URL", f"http://127.0.0.1:{free_port()}/nothing")
    assert main(["check-config"]) == 1
    out = capsys.readouterr().out
    assert "very-secret" not in out and "WEBHOOK_ADMIN_TOKEN" in out
    assert "PROBLEM: WEBHOOK_APP_ID is required" in out
    assert "signing keys cannot be fetched" in out
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    assert main(["check-config"]) == 0
    assert "no problem found" in capsys.readouterr().out
    monkeypatch.setenv("WEBHOOK_PLUGINS", "no_such_plugin_module")
    assert main(["check-config"]) == 1
    assert "plugin 'no_such_plugin_module'" in capsys.readouterr().out


@pytest.mark.parametrize(
    "url",
    ["redis://:{pw}@127.0.0.1:{port}/0", "redis://bot:{pw}@127.0.0.1:{port}/0", "rediss://u:{pw}@127.0.0.1:{port}"],
)
def test_check_config_masks_the_store_password_everywhere(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    password = "pa%40ss-w0rd:with@signs"  # quoted and not: neither spelling may appear
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    monkeypatch.setenv("WEBHOOK_STORE_URL", url.format(pw=password, port=free_port()))  # nothing listens
    assert main(["check-config"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: store:" in out and ":***@127.0.0.1" in out
    for spelling in (password, "pa@ss", "pa%40ss", "w0rd"):
        assert spelling not in out


def test_every_metric_the_grafana_dashboard_queries_is_exported(tmp_path: Path, store_url: str) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bcomms_webhook_[a-z_]+", target["expr"])
    }
    assert len(dashboard["panels"]) >= 8 and len(queried) >= 12
    # Traffic that makes every family show samples: calls, a handler that fails, refusals, a store outage.
    with LocalGraphKeys() as keys:
        app = create_app({"APP_ID": "bot", "OPENID_CONFIG_URL": keys.config_url, "STORE_URL": store_url})
        client = app.test_client()
        on.call_state("incoming")(_failing_handler)
        good = {"Authorization": f"Bearer {keys.token(aud='bot', tid='t')}"}
        assert client.post("/api/calls", json=envelope(incoming_call(new_id())), headers=good).status_code == 202
        assert client.post("/api/calls", json={"value": []}, headers=good).status_code == 400
        bad = {"Authorization": f"Bearer {keys.token(aud='someone-else', tid='t')}"}
        assert client.post("/api/calls", json=envelope(incoming_call(new_id())), headers=bad).status_code == 401
        exposition = client.get("/metrics").get_data(as_text=True)
    exported = set(re.findall(r"^(comms_webhook_[a-z_]+)", exposition, flags=re.M))
    assert queried <= exported, sorted(queried - exported)


def _failing_handler(call: Any) -> None:
    raise RuntimeError("for the dashboard test")
