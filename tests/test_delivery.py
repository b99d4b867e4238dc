"""Handler delivery: failures recorded and retried, deferred handlers, the outbox across a SIGKILL."""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from webhook import create_app, on
from webhook.builders import call_notification, envelope, incoming_call, new_id, tone_notification
from webhook.cli import main
from webhook.http import EXTENSION
from webhook.simulate import send_all
from webhook.store import SQLiteStore, open_store

from .conftest import ADMIN_TOKEN
from .support import ROOT, Gunicorn, app_without_autoload, metric_value, run_cli


def test_a_raising_handler_beside_two_good_ones_is_recorded_and_retried_after_a_fix(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    broken_flag = tmp_path / "handler-is-broken"
    broken_flag.touch()
    name = f"plugin_{uuid.uuid4().hex[:10]}"
    (folder / f"{name}.py").write_text(
        textwrap.dedent(f"""
        from pathlib import Path
        from webhook import on
        GOOD = []
        @on.call_state("established")
        def first_good(call):
            GOOD.append(("first", call.id))
        @on.call_state("established")
        def flaky(call):
            if Path({str(broken_flag)!r}).exists():
                raise RuntimeError("flaky handler is broken")
            GOOD.append(("flaky", call.id))
        @on.call_state("established")
        def second_good(call):
            GOOD.append(("second", call.id))
    """)
    )
    for key, value in {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": store_url,
        "WEBHOOK_PLUGINS": name,
        "WEBHOOK_DISABLE_PLUGIN_AUTOLOAD": "1",
    }.items():
        monkeypatch.setenv(key, value)
    app = create_app()
    call_id = new_id()
    response = app.test_client().post("/api/calls", json=envelope(call_notification(call_id, "established")))
    assert response.status_code == 202
    module = importlib.import_module(name)
    assert sorted(module.GOOD) == [("first", call_id), ("second", call_id)]

    assert main(["failures"]) == 0
    listing = capsys.readouterr().out
    assert f"{name}.flaky on call_state_changed  call {call_id}  attempts 1" in listing
    assert "RuntimeError: flaky handler is broken" in listing
    (failure,) = app.extensions[EXTENSION].store.failures()

    assert main(["failures", "--retry", str(failure.id)]) == 1  # still broken
    assert "failed again" in capsys.readouterr().out
    broken_flag.unlink()  # the fix
    assert main(["failures", "--retry", str(failure.id)]) == 0
    assert f"#{failure.id} {name}.flaky: succeeded" in capsys.readouterr().out
    assert ("flaky", call_id) in module.GOOD
    assert main(["failures"]) == 0
    assert "no pending handler failures" in capsys.readouterr().out
    resolved = app.extensions[EXTENSION].store.failure(failure.id)
    assert (resolved.status, resolved.attempts) == ("resolved", 3)


def test_a_deferred_handler_runs_after_the_answer_in_each_calls_order(store_url: str) -> None:
    release = threading.Event()
    first_started = threading.Event()
    heard: list[tuple[str, int]] = []

    @on.tone(deferred=True)
    def slow(call: Any, sequence_id: int) -> None:
        first_started.set()
        assert release.wait(10), "the test never released the handler"
        heard.append((call.id, sequence_id))

    app = app_without_autoload(store_url)
    client = app.test_client()
    call_a, call_b = new_id(), new_id()
    response = client.post("/api/calls", json=envelope(tone_notification(call_a, "tone1", 1)))
    assert response.status_code == 202  # answered...
    assert first_started.wait(10)
    assert not release.is_set() and heard == []  # ...while the handler is still blocked
    for sequence in range(2, 12):
        assert client.post("/api/calls", json=envelope(tone_notification(call_a, "tone1", sequence))).status_code == 202
        assert client.post("/api/calls", json=envelope(tone_notification(call_b, "tone2", sequence))).status_code == 202
    release.set()
    delivery = app.extensions[EXTENSION].delivery
    delivery.drain()
    assert [s for c, s in heard if c == call_a] == list(range(1, 12))
    assert [s for c, s in heard if c == call_b] == list(range(2, 12))
    assert delivery.store.pending_events() == 0


def test_slow_handlers_are_logged_and_counted(store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    @on.call_state("incoming")
    def sluggish(call: Any) -> None:
        time.sleep(0.08)

    app = app_without_autoload(store_url, SLOW_HANDLER_SECONDS=0.02)
    name = f"{__name__}.test_slow_handlers_are_logged_and_counted.<locals>.sluggish"
    calls, failures, seconds = (
        metric_value(each, handler=name)
        for each in ("handler_calls_total", "handler_failures_total", "handler_duration_seconds_sum")
    )
    with caplog.at_level(logging.WARNING, logger="webhook.delivery"):
        app.test_client().post("/api/calls", json=envelope(incoming_call(new_id())))
    assert f"handler {name} took" in caplog.text
    assert metric_value("handler_calls_total", handler=name) - calls == 1
    assert metric_value("handler_failures_total", handler=name) - failures == 0
    assert metric_value("handler_duration_seconds_sum", handler=name) - seconds >= 0.08


def test_events_nobody_listens_to_skip_the_outbox_and_delivered_ones_leave_it(store_url: str) -> None:
    app = app_without_autoload(store_url)
    store = app.extensions[EXTENSION].store
    app.test_client().post("/api/calls", json=envelope(incoming_call(new_id())))
    assert store.pending_events() == 0
    on.call_state("established")(lambda call: None)
    app.test_client().post("/api/calls", json=envelope(call_notification(new_id(), "established")))
    assert store.pending_events() == 0


@pytest.mark.slow
def test_a_worker_killed_mid_handler_gets_its_transition_after_restart(tmp_path: Path) -> None:
    marks = tmp_path / "marks.jsonl"
    block = tmp_path / "block"
    block.touch()
    store_path = tmp_path / "calls.sqlite3"
    env = {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": f"sqlite:///{store_path}",
        "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
        "WEBHOOK_PLUGINS": "tests.apps.blocking_plugin",
        "WEBHOOK_DISABLE_PLUGIN_AUTOLOAD": "1",
        "MARKS_FILE": str(marks),
        "BLOCK_FILE": str(block),
    }
    server = Gunicorn("webhook:create_app()", workers=2, env=env, log=tmp_path / "gunicorn.log")
    try:
        server.wait_ready("/api/calls?limit=1", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
        call_id = new_id()
        body = envelope(call_notification(call_id, "established"))
        poster = threading.Thread(target=send_all, args=(server.url + "/api/calls", [body]), daemon=True)
        poster.start()
        started = wait_for_mark(marks, "started", call_id)
        os.kill(started["pid"], signal.SIGKILL)  # between applying the transition and finishing its handler
        block.unlink()  # the next attempt, in another process, may finish
        done = wait_for_mark(marks, "done", call_id, timeout=60)
        assert done["pid"] != started["pid"]
        assert SQLiteStore(store_path).get(call_id).state == "established"
        deadline = time.monotonic() + 10
        while SQLiteStore(store_path).pending_events() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert SQLiteStore(store_path).pending_events() == 0
    finally:
        server.stop()


def wait_for_mark(marks: Path, what: str, call_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marks.exists():
            for line in marks.read_text().splitlines():
                mark = json.loads(line)
                if mark["what"] == what and mark["call"] == call_id:
                    return mark
        time.sleep(0.05)
    raise AssertionError(f"no {what!r} mark for {call_id} in {timeout}s: {marks.read_text() if marks.exists() else ''}")


@pytest.mark.slow
def test_graceful_shutdown_drains_deferred_handlers(tmp_path: Path) -> None:
    marks = tmp_path / "marks.txt"
    env = {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": f"sqlite:///{tmp_path / 'calls.sqlite3'}",
        "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
        "WEBHOOK_PLUGINS": "tests.apps.slow_deferred_plugin",
        "WEBHOOK_DISABLE_PLUGIN_AUTOLOAD": "1",
        "MARKS_FILE": str(marks),
    }
    server = Gunicorn(
        "webhook:create_app()",
        workers=1,
        env=env,
        log=tmp_path / "gunicorn.log",
        config=ROOT / "deploy" / "gunicorn.conf.py",
    )
    call_id = new_id()
    try:
        server.wait_ready("/api/calls?limit=1", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert send_all(server.url + "/api/calls", [envelope(incoming_call(call_id))]) == [202]
        assert not marks.exists()  # answered before the deferred handler finished
    finally:
        server.stop()  # SIGTERM: a graceful shutdown
    assert marks.read_text() == f"greeted {call_id}\n"


# A worker applies a notification whose handler never ends, and the machine's processes are all killed (a
# container restart). In a PID namespace of its own each run starts at pid 1, as a container does, so the new
# run's processes take the old ones' pids.
_LEAVE_AN_EVENT = """
import os, signal, sys, time
from webhook.builders import envelope, incoming_call
from webhook.owners import process_owner
from webhook.parse import load_notifications
from webhook.store import open_store
from webhook.store.base import Lease
store = open_store(sys.argv[1])
(notification,) = load_notifications(envelope(incoming_call(sys.argv[2])))
store.apply(notification, "2026-01-01T00:00:00.000Z", lease=Lease(process_owner(), time.time() + 300))
print(process_owner(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
_RESTART_AND_SWEEP = """
import subprocess, sys, time
from webhook.delivery import Delivery
from webhook.clock import utc_now
from webhook.store import open_store
from webhook.sweeper import Sweeper
other = subprocess.Popen(["sleep", "30"])  # a new process that takes the dead worker's pid
delivery = Delivery(open_store(sys.argv[1]), clock=utc_now, lease_seconds=300)
print(other.pid, Sweeper(delivery).recover(), flush=True)
other.kill()
"""


def test_events_of_workers_killed_by_a_restart_are_delivered_at_once_though_their_pids_live_again(
    tmp_path: Path, store_url: str
) -> None:
    namespace = ["unshare", "--pid", "--fork", "--mount-proc"]
    if subprocess.run([*namespace, "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create a PID namespace here (unshare needs root or user namespaces)")
    first = subprocess.run(
        [*namespace, "sh", "-c", f'{sys.executable} -c "$0" "$1" "$2"; true', _LEAVE_AN_EVENT, store_url, new_id()],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    old_owner = first.stdout.strip()
    assert old_owner.split(":")[1] == "2", first.stderr  # sh was pid 1, the worker pid 2
    assert open_store(store_url).pending_events() == 1
    second = subprocess.run(
        [*namespace, sys.executable, "-c", _RESTART_AND_SWEEP, store_url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    reused_pid, recovered = second.stdout.split()
    assert reused_pid == "2"  # the old owner's pid is alive again, as another process
    assert recovered == "1"  # delivered in the first sweep, not after the 300 s lease
    assert open_store(store_url).pending_events() == 0


def test_retrying_a_failure_whose_plugin_is_not_loaded_counts_nothing_and_says_what_to_do(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    name = f"plugin_{uuid.uuid4().hex[:10]}"
    (folder / f"{name}.py").write_text(
        "from webhook import on\n@on.call_state('incoming')\ndef broken(call):\n    raise RuntimeError('broken')\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "PLUGINS": name, "DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert app.test_client().post("/api/calls", json=envelope(incoming_call(new_id()))).status_code == 202
    store = app.extensions[EXTENSION].store
    (failure,) = store.failures()
    env = {"WEBHOOK_STORE_URL": store_url, "WEBHOOK_DISABLE_PLUGIN_AUTOLOAD": "1"}
    without = run_cli("failures", "--retry", str(failure.id), cwd=tmp_path, env=env)
    assert without.returncode == 1
    assert f"#{failure.id}: not retried: handler {name}.broken is not connected to call_state_changed" in without.stderr
    assert "load its plugin" in without.stderr
    assert store.failure(failure.id).attempts == 1  # nothing counted
    store.update_failure(failure.id, resolved=True, error=None, now="2026-01-01T00:00:00.000Z")
    resolved = run_cli("failures", "--retry", str(failure.id), cwd=tmp_path, env=env)
    assert resolved.returncode == 0
    assert f"#{failure.id} {name}.broken: already resolved (attempts 2)" in resolved.stdout
