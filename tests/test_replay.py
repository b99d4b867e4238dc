"""Replaying journals and payload files: the CLI and webhook.replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from webhook import create_app
from webhook.builders import envelope, incoming_call, new_id
from webhook.cli import main
from webhook.http import EXTENSION
from webhook.replay import Item, collect, only_call, replay
from webhook.scenarios import SCENARIOS
from webhook.store import open_store
from webhook.testing import LocalGraphKeys
from webhook.transport import AppTarget

from .support import Gunicorn, free_port


def summary(call: Any) -> dict[str, Any]:
    """What must survive a replay: state, history (without times), participants, operations, tones."""
    return {
        "state": call.state,
        "history": [(step["from"], step["to"], step["changeType"]) for step in call.history],
        "participants": call.participants,
        "operations": sorted((op["id"], op["status"]) for op in call.operations.values()),
        "tones": [(tone["tone"], tone["sequenceId"]) for tone in call.tones],
        "end": call.end,
    }


@pytest.fixture
def recorded_run(tmp_path: Path) -> tuple[Path, Any, list[str]]:
    """A run of every docs lifecycle, twice each, journaled; returns the journal folder, the store, the ids."""
    journal = tmp_path / "journal-run"
    app = create_app(
        {"AUTH": "disabled", "STORE_URL": f"sqlite:///{tmp_path / 'original.sqlite3'}", "JOURNAL_DIR": str(journal)}
    )
    client = app.test_client()
    ids = []
    for name in sorted(SCENARIOS):
        for _ in range(2):
            scenario = SCENARIOS[name](new_id())
            ids.append(scenario.call_id)
            for body in scenario.bodies:
                assert client.post("/api/calls", json=body).status_code == 202
    return journal, app.extensions[EXTENSION].store, ids


def test_journal_then_replay_rebuilds_the_same_calls(
    recorded_run: tuple[Path, Any, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    journal, original, ids = recorded_run
    fresh = tmp_path / "fresh.sqlite3"
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    monkeypatch.setenv("WEBHOOK_JOURNAL", "off")
    assert main(["replay", str(journal), "--in-process", "--store", f"sqlite:///{fresh}"]) == 0
    out = capsys.readouterr()
    printed = out.out.splitlines()
    assert len(printed) == sum(len(SCENARIOS[name](new_id()).bodies) for name in SCENARIOS) * 2
    assert all(line.startswith("202  ") for line in printed)
    assert "0 not 2xx" in out.err
    rebuilt = open_store(f"sqlite:///{fresh}")
    for call_id in ids:
        assert summary(rebuilt.get(call_id)) == summary(original.get(call_id))
    assert {c.id for c in rebuilt.list_calls(limit=1000)} == set(ids)


def test_filter_replays_one_call_out_of_a_busy_journal(recorded_run: tuple[Path, Any, list[str]]) -> None:
    journal, _, ids = recorded_run
    items = only_call(collect([journal]), ids[3].upper().replace("-", ""))
    assert items
    assert all(item.call_ids() == [ids[3]] for item in items)


def test_payload_files_and_folders_in_name_order_and_a_bad_one_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = SCENARIOS["answered_and_hung_up"](new_id())
    folder = tmp_path / "call"
    (folder / "later").mkdir(parents=True)
    bodies = list(scenario.bodies)
    for index, body in enumerate(bodies[:3]):
        (folder / f"{index:02d}-part.json").write_text(json.dumps(body))
    for index, body in enumerate(bodies[3:]):
        (folder / "later" / f"{index:02d}.json").write_text(json.dumps(body))
    assert [item.source.split("/")[-1] for item in collect([folder])] == [
        "00-part.json",
        "01-part.json",
        "02-part.json",
        "00.json",
        "01.json",
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"value": []}))
    store_url = f"sqlite:///{tmp_path / 'replayed.sqlite3'}"
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    assert main(["replay", str(folder), str(bad), "--in-process", "--store", store_url]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["202"] * 5 + ["400"]
    assert lines[0].endswith(scenario.call_id)
    assert open_store(store_url).get(scenario.call_id).state == "terminated"


def test_not_a_payload_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.json").write_text("not json")
    assert main(["replay", str(tmp_path / "notes.json"), "--in-process"]) == 2
    assert "notes.json is not a JSON payload" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.json"), "--in-process"]) == 2


def test_signed_replay_goes_through_real_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "replay-key.pem"
    LocalGraphKeys().save_pem(key)
    payload = tmp_path / "incoming.json"
    payload.write_text(json.dumps(envelope(incoming_call(new_id()))))
    monkeypatch.setenv("WEBHOOK_STORE_URL", f"sqlite:///{tmp_path / 'signed.sqlite3'}")
    assert main(["replay", str(payload), "--in-process", "--token-key", str(key), "--app-id", "bot"]) == 0
    monkeypatch.setenv("WEBHOOK_APP_ID", "bot")  # jwt mode without a signing key: refused, and said so
    assert main(["replay", str(payload), "--in-process"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("401")


def test_keep_timing_reproduces_the_gaps_divided_by_speed(tmp_path: Path, store_url: str) -> None:
    body = json.dumps(envelope(incoming_call(new_id())))
    items = [
        Item("a", body, "2026-01-01T00:00:00.000Z"),
        Item("b", body, "2026-01-01T00:00:03.000Z"),
        Item("c", body, "2026-01-01T00:00:04.500Z"),
    ]
    slept: list[float] = []
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url})
    results = replay(items, AppTarget(app), keep_timing=True, speed=2, sleep=slept.append)
    assert [r.status for r in results] == [202, 202, 202]
    assert slept == [1.5, 0.75]
    slept.clear()
    replay(items, AppTarget(app), sleep=slept.append)
    assert slept == []


@pytest.mark.slow
def test_replay_to_a_url(
    recorded_run: tuple[Path, Any, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, original, ids = recorded_run
    store_path = tmp_path / "served.sqlite3"
    env = {"WEBHOOK_AUTH": "disabled", "WEBHOOK_STORE_URL": f"sqlite:///{store_path}", "WEBHOOK_ADMIN_TOKEN": "t"}
    server = Gunicorn("webhook:create_app()", workers=2, env=env, log=tmp_path / "gunicorn.log")
    try:
        server.wait_ready("/api/calls?limit=1", {"Authorization": "Bearer t"})
        assert main(["replay", str(journal), "--url", server.url + "/api/calls", "--filter", ids[0]]) == 0
    finally:
        server.stop()
    assert summary(open_store(f"sqlite:///{store_path}").get(ids[0])) == summary(original.get(ids[0]))
    assert main(["replay", str(journal), "--url", f"http://127.0.0.1:{free_port()}/api/calls"]) == 1


def test_lines_that_are_not_records_are_skipped_named_and_fail_the_run(
    recorded_run: tuple[Path, Any, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    journal, _, _ = recorded_run
    (path,) = sorted(journal.glob("journal-*.jsonl"))
    good = path.read_bytes().splitlines(keepends=True)
    torn = good[3][: len(good[3]) // 2]  # what a full disk left behind, glued to the next record
    damaged = [
        *good[:3],
        torn + good[4],
        b"[1, 2]\n",
        b'{"body": 7}\n',
        b'{"body": "{}", "headers": {"Scenario-Id": 5}}\n',
        b"\xff\xfe not utf-8\n",
        *good[5:],
    ]
    path.write_bytes(b"".join(damaged))
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    monkeypatch.setenv("WEBHOOK_STORE_URL", f"sqlite:///{tmp_path / 'after-damage.sqlite3'}")
    monkeypatch.setenv("WEBHOOK_JOURNAL", "off")
    assert main(["replay", str(journal), "--in-process"]) == 1
    out = capsys.readouterr()
    assert all(line.startswith("202  ") for line in out.out.splitlines())
    assert len(out.out.splitlines()) == len(good) - 2  # every whole record but the two the tear destroyed
    skipped = [line for line in out.err.splitlines() if line.startswith("comms-webhook: skipped")]
    assert [line.split(f"{path}:")[1].split()[0] for line in skipped] == ["4", "5", "6", "7", "8"]
    assert "Traceback" not in out.err
    assert "5 line(s) skipped" in out.err
