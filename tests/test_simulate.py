"""The call simulator: realistic lifecycles, delivery faults, expected against observed."""

from __future__ import annotations

import json
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from webhook.builders import envelope, incoming_call, new_id
from webhook.cli import main
from webhook.scenarios import SCENARIOS, make_calls
from webhook.simulate import plan, send_all
from webhook.testing import LocalGraphKeys

from .conftest import ADMIN_TOKEN
from .support import Gunicorn


def test_plan_is_reproducible_and_injects_the_faults_asked_for() -> None:
    calls = make_calls(40, seed=9)
    assert plan(calls, seed=9) == plan(calls, seed=9)
    clean = plan(calls, seed=9)
    assert len(clean) == sum(len(c.bodies) for c in calls)
    faulty = plan(calls, duplicates=0.5, reorder=0.5, seed=9)
    assert len(faulty) > len(clean)
    for call in calls:  # without faults, each call keeps its order
        mine = [body for body in clean if any(body is b for b in call.bodies)]
        assert mine == list(call.bodies)
    assert {c.name for c in calls} == set(SCENARIOS)


def test_simulate_in_process_with_faults_and_signed_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key.pem"
    LocalGraphKeys().save_pem(key)
    monkeypatch.setenv("WEBHOOK_STORE_URL", f"sqlite:///{tmp_path / 'sim.sqlite3'}")
    args = [
        "simulate",
        "--in-process",
        "--calls",
        "48",
        "--duplicates",
        "0.3",
        "--reorder",
        "0.3",
        "--seed",
        "4",
        "--token-key",
        str(key),
        "--app-id",
        "bot",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 not 2xx; 48/48 calls as expected" in out
    assert "record_and_dtmf" in out and "meeting_join" in out


def test_simulate_rejects_nonsense(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--in-process", "--duplicates", "2"]) == 2
    assert "--duplicates must be a probability" in capsys.readouterr().err


@pytest.mark.slow
def test_simulate_200_calls_with_faults_against_gunicorn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": f"sqlite:///{tmp_path / 'calls.sqlite3'}",
        "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    server = Gunicorn("webhook:create_app()", workers=4, env=env, log=tmp_path / "gunicorn.log")
    try:
        server.wait_ready("/api/calls?limit=1", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
        code = main(
            [
                "simulate",
                "--url",
                server.url + "/api/calls",
                "--calls",
                "200",
                "--duplicates",
                "0.2",
                "--reorder",
                "0.2",
                "--concurrency",
                "16",
                "--admin-token",
                ADMIN_TOKEN,
                "--seed",
                "21",
            ]
        )
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert code == 0, out
    assert "200/200 calls as expected" in out


@pytest.mark.slow
def test_simulate_reports_calls_that_were_not_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = Gunicorn("bench.bare:create_app()", workers=1, env={}, log=tmp_path / "gunicorn.log")
    try:
        deadline = time.monotonic() + 30  # the bare endpoint has no read API: poll its POST
        while send_all(server.url + "/api/calls", [{}], concurrency=1) != [202] and time.monotonic() < deadline:
            time.sleep(0.1)
        code = main(["simulate", "--url", server.url + "/api/calls", "--calls", "8", "--admin-token", "x"])
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert code == 1
    assert "MISMATCH" in out
    assert Counter(line.split()[0] for line in out.splitlines() if line.startswith("MISMATCH")) == {"MISMATCH": 8}


def test_in_process_trials_never_touch_the_real_store_nor_run_its_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "production.sqlite3"
    (tmp_path / "production_plugin.py").write_text(
        "from pathlib import Path\nPath(__file__).with_name('plugin-was-loaded').touch()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    monkeypatch.setenv("WEBHOOK_STORE_URL", f"sqlite:///{real}")
    monkeypatch.setenv("WEBHOOK_PLUGINS", "production_plugin")
    monkeypatch.setenv("WEBHOOK_DATA_DIR", str(tmp_path / "data"))
    assert main(["simulate", "--in-process", "--calls", "4"]) == 0
    journal = tmp_path / "journal.jsonl"
    journal.write_text(json.dumps({"body": json.dumps(envelope(incoming_call(new_id())))}) + "\n")
    assert main(["replay", str(journal), "--in-process"]) == 0
    assert not real.exists()
    assert not (tmp_path / "plugin-was-loaded").exists()
    assert not (tmp_path / "data").exists()  # nor its journal
    assert "4/4 calls as expected" in capsys.readouterr().out


def test_simulate_through_the_fake_graph_with_the_bots_own_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "switchboard.py").write_text(
        textwrap.dedent("""
        from webhook import on

        @on.call_state("incoming")
        def route(call, actions):
            number = int(call.caller.display_name.split()[-1])
            if number % 3 == 1:
                actions.answer()
            elif number % 3 == 2:
                actions.reject("busy")
            # and every third call nobody answers: Graph ends it after 15 s

        @on.media_active
        def hang_up(actions):
            actions.hang_up()
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("WEBHOOK_PLUGINS", "switchboard")
    monkeypatch.setenv("WEBHOOK_DISABLE_PLUGIN_AUTOLOAD", "1")
    argv = [
        "simulate",
        "--in-process",
        "--plugins",
        "--fake-graph",
        "--calls",
        "9",
        "--duplicates",
        "0.3",
        "--seed",
        "4",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "incoming -> establishing -> established -> terminating -> terminated" in out
    assert "incoming -> terminated" in out
    assert "the handlers sent: answer 3, delete 3, reject 3; 9/9 calls as in Graph" in out
