"""The journal of accepted (and optionally rejected) callbacks."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from webhook import ConfigError, create_app
from webhook.builders import call_notification, envelope, incoming_call, new_id
from webhook.journal import (
    CORRELATION_HEADERS,
    MAX_HEADER_CHARS,
    Journal,
    correlation_headers,
    environ_correlation_headers,
    read_records,
)
from webhook.simulate import send_all
from webhook.testing import LocalGraphKeys

from .conftest import ADMIN_TOKEN
from .support import Gunicorn, metric_value

GRAPH_HEADERS = {
    "Scenario-Id": "2f1a1100-b174-40a0-aba7-0b405e01ed92",
    "Client-Request-Id": "b6ee35b9-7b26-4b25-9a4d-03e8c7a1c111",
    "X-Microsoft-Skype-Chain-ID": "b0fe8425-6f48-41ed-9dd6-b706ff66319a",
    "X-Microsoft-Skype-Message-ID": "8c0b0c2e-1a7e-4a53-b1c5-1f4a5b0e6d22",
    "Request-Id": "req-1",
}


def lines(folder: Path, kind: str = "journal") -> list[dict[str, Any]]:
    return [record for path in Journal(folder).files(kind) for record in read_records(path)]


def test_accepted_callbacks_are_journaled_with_headers_and_tenant_never_the_token(
    tmp_path: Path, store_url: str
) -> None:
    folder = tmp_path / "journal-signed"
    with LocalGraphKeys() as keys:
        app = create_app(
            {
                "APP_ID": "bot",
                "OPENID_CONFIG_URL": keys.config_url,
                "STORE_URL": store_url,
                "JOURNAL_DIR": str(folder),
                "JOURNAL_REJECTED": "on",
            }
        )
        client = app.test_client()
        tokens = []
        for _ in range(5):
            token = keys.token(aud="bot", tid="tenant-7")
            tokens.append(token)
            body = envelope(incoming_call(new_id()))
            response = client.post(
                "/api/calls", json=body, headers={"Authorization": f"Bearer {token}", **GRAPH_HEADERS}
            )
            assert response.status_code == 202
        bad = keys.token(aud="someone-else")
        tokens.append(bad)
        assert client.post("/api/calls", json=body, headers={"Authorization": f"Bearer {bad}"}).status_code == 401
    records = lines(folder)
    assert len(records) == 5
    first = records[0]
    assert set(first) >= {"receivedAt", "headers", "tenant", "body"}
    assert first["tenant"] == "tenant-7"
    assert first["headers"].items() >= GRAPH_HEADERS.items()
    assert json.loads(first["body"])["value"][0]["changeType"] == "created"
    (rejected,) = lines(folder, "rejected")
    assert (rejected["status"], rejected["error"]) == (401, "invalid_token")
    assert "body" not in rejected  # refused before the body was read
    everything = "".join(path.read_text() for path in folder.iterdir() if path.is_file())
    assert "Authorization" not in everything and "Bearer" not in everything
    for token in tokens:
        assert token not in everything
        assert token.split(".")[2] not in everything  # not even the signature


def test_rejected_bodies_are_kept_with_the_reason_when_asked(tmp_path: Path, store_url: str) -> None:
    folder = tmp_path / "journal-rejected"
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "JOURNAL_DIR": str(folder), "JOURNAL_REJECTED": "on"})
    response = app.test_client().post("/api/calls", json={"value": [{"changeType": "updated"}]})
    assert response.status_code == 400
    (rejected,) = lines(folder, "rejected")
    assert rejected["error"] == "invalid_payload"
    assert "resourceUrl" in rejected["message"]
    assert json.loads(rejected["body"]) == {"value": [{"changeType": "updated"}]}
    assert lines(folder) == []


def test_journal_off_writes_nothing(tmp_path: Path, store_url: str) -> None:
    folder = tmp_path / "journal-off"
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "JOURNAL_DIR": str(folder), "JOURNAL": "off"})
    assert app.test_client().post("/api/calls", json=envelope(incoming_call(new_id()))).status_code == 202
    assert not folder.exists() or lines(folder) == []


def test_rotation_by_size_and_retention_by_day(tmp_path: Path) -> None:
    folder = tmp_path / "rotating"
    folder.mkdir()
    (folder / "journal-20200101-001.jsonl").write_text('{"old": true}\n')
    journal = Journal(folder, max_bytes=300, retention_days=14)
    for index in range(20):
        journal.append({"index": index, "padding": "x" * 60})
    files = journal.files()
    assert len(files) > 3
    assert all(path.stat().st_size <= 300 for path in files)
    assert [record["index"] for path in files for record in read_records(path)] == list(range(20))
    assert not (folder / "journal-20200101-001.jsonl").exists()


def test_an_unwritable_journal_does_not_lose_the_call(tmp_path: Path, store_url: str) -> None:
    folder = tmp_path / "journal-broken"
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "JOURNAL_DIR": str(folder), "ADMIN_TOKEN": "t"})
    folder.rmdir()
    folder.write_text("not a folder any more")  # appends now fail, whoever runs the test
    failed = metric_value("journal_errors_total")
    call_id = new_id()
    assert app.test_client().post("/api/calls", json=envelope(incoming_call(call_id))).status_code == 202
    assert app.test_client().get(f"/api/calls/{call_id}", headers={"Authorization": "Bearer t"}).status_code == 200
    assert metric_value("journal_errors_total") - failed == 1


def test_a_journal_folder_that_cannot_be_made_stops_start_up(tmp_path: Path, store_url: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="WEBHOOK_JOURNAL_DIR"):
        create_app({"AUTH": "disabled", "STORE_URL": store_url, "JOURNAL_DIR": str(blocker / "journal")})


@pytest.mark.slow
def test_four_workers_journal_every_accepted_request_exactly_once(tmp_path: Path) -> None:
    folder = tmp_path / "journal-load"
    env = {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": f"sqlite:///{tmp_path / 'calls.sqlite3'}",
        "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
        "WEBHOOK_JOURNAL_DIR": str(folder),
        "WEBHOOK_JOURNAL_MAX_BYTES": "20000",  # rotate often while four processes write
    }
    server = Gunicorn("webhook:create_app()", workers=4, env=env, log=tmp_path / "gunicorn.log")
    bodies = []
    for _ in range(300):
        call_id = new_id()
        bodies.append(envelope(incoming_call(call_id)))
        bodies.append(envelope(call_notification(call_id, "established", padding="p" * 200)))
    try:
        server.wait_ready("/api/calls?limit=1", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
        statuses = send_all(server.url + "/api/calls", bodies, concurrency=16)
    finally:
        server.stop()
    assert Counter(statuses) == {202: len(bodies)}
    files = Journal(folder).files()
    assert len(files) > 1
    journaled = Counter(json.dumps(json.loads(record["body"]), sort_keys=True) for record in lines(folder))
    sent = Counter(json.dumps(body, sort_keys=True) for body in bodies)
    assert journaled == sent  # every accepted request exactly once, every line parsed


def test_a_new_day_starts_a_new_file(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    today = [datetime(2026, 11, 27, 23, 59, 59, tzinfo=timezone.utc)]
    journal = Journal(tmp_path / "days", clock=lambda: today[0])
    journal.append({"n": 1})
    today[0] = datetime(2026, 11, 28, 0, 0, 1, tzinfo=timezone.utc)
    journal.append({"n": 2})
    assert [path.name for path in journal.files()] == ["journal-20261127-001.jsonl", "journal-20261128-001.jsonl"]


def test_a_file_deleted_or_replaced_while_open_is_written_again_by_its_name(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "kept-open")
    journal.append({"n": 1})
    (current,) = journal.files()
    current.unlink()  # deleted while this process holds it open: the next line goes to a file by that name
    journal.append({"n": 2})
    assert [record["n"] for record in read_records(current)] == [2]
    moved = current.rename(current.with_suffix(".moved"))  # moved away (a log shipper): likewise
    journal.append({"n": 3})
    assert [record["n"] for record in read_records(current)] == [3]
    assert [record["n"] for record in read_records(moved)] == [2]
    current.rename(current.with_suffix(".old"))  # replaced: a new file by the same name, which gets the next line
    current.write_text("")
    journal.append({"n": 4})
    assert [record["n"] for record in read_records(current)] == [4]


def test_a_lock_file_deleted_while_open_is_not_locked_apart_by_each_process(tmp_path: Path) -> None:
    folder = tmp_path / "lock-deleted"
    first, second = Journal(folder, max_bytes=200), Journal(folder, max_bytes=200)
    first.append({"index": 0, "padding": "x" * 40})
    lock = folder / ".journal.lock"
    lock.unlink()  # a clean-up of the folder: both must lock the new lock file, which names the current file
    for index in range(1, 12):
        (first if index % 2 else second).append({"index": index, "padding": "x" * 40})
        *_, last = read_records(folder / lock.read_text().strip())
        assert last["index"] == index
    files = first.files()
    assert all(path.stat().st_size <= 200 for path in files)
    assert sorted(record["index"] for path in files for record in read_records(path)) == list(range(12))


def test_processes_agree_on_the_file_another_rotated_to(tmp_path: Path) -> None:
    folder = tmp_path / "two-writers"
    first, second = Journal(folder, max_bytes=200), Journal(folder, max_bytes=200)
    for index in range(12):  # alternating: each sees the files the other moved on to
        (first if index % 2 else second).append({"index": index, "padding": "x" * 40})
    files = first.files()
    assert len(files) > 2 and all(path.stat().st_size <= 200 for path in files)
    assert [record["index"] for path in files for record in read_records(path)] == list(range(12))


# The journal fills a file until a file-size limit (RLIMIT_FSIZE, what `ulimit -f` sets) stops it: the kernel
# then writes part of the line that crosses the limit, exactly as on a full disk, and refuses the next write.
_FILL_UNTIL_LIMIT = """
import json, resource, sys
from webhook.journal import Journal
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
journal = Journal(sys.argv[1], max_bytes=10 * limit)
outcomes = []
for index in range(30):
    try:
        journal.append({"index": index, "padding": "x" * 150})
        outcomes.append(index)
    except OSError as exc:
        outcomes.append(exc.__class__.__name__)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space is back
journal.append({"index": 30, "padding": "after"})
print(json.dumps(outcomes))
"""


def test_a_full_disk_never_leaves_a_torn_line(tmp_path: Path) -> None:
    folder = tmp_path / "journal-full"
    limit = 1000  # not a multiple of the ~180-byte lines: the line that crosses it is written in part
    done = subprocess.run(
        [sys.executable, "-c", _FILL_UNTIL_LIMIT, str(folder), str(limit)],
        capture_output=True,
        text=True,
        check=True,
    )
    outcomes = json.loads(done.stdout)
    written = [outcome for outcome in outcomes if isinstance(outcome, int)]
    assert 0 < len(written) < 30
    assert set(outcomes[len(written) :]) == {"OSError"}
    # Every line is a whole record: what was acknowledged, then the append made once space came back.
    assert [record["index"] for record in lines(folder)] == [*written, 30]


def test_a_failed_append_is_counted_and_logged_every_time(
    tmp_path: Path, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "journal-gone"
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "JOURNAL_DIR": str(folder)})
    folder.rmdir()
    folder.write_text("")
    failed = metric_value("journal_errors_total")
    client = app.test_client()
    for _ in range(3):
        assert client.post("/api/calls", json=envelope(incoming_call(new_id()))).status_code == 202
    assert len([r for r in caplog.records if "could not write the journal" in r.message]) == 3
    assert metric_value("journal_errors_total") - failed == 3


def test_header_values_are_capped_in_logs_and_the_rejected_journal(
    tmp_path: Path, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "journal-headers"
    app = create_app(
        {"AUTH": "jwt", "APP_ID": "bot", "STORE_URL": store_url, "JOURNAL_DIR": str(folder), "JOURNAL_REJECTED": "on"}
    )
    huge = {name: "h" * 20_000 for name in GRAPH_HEADERS}
    caplog.set_level(logging.INFO, logger="webhook")
    response = app.test_client().post("/api/calls", json=envelope(incoming_call(new_id())), headers=huge)
    assert response.status_code == 401
    (rejected,) = lines(folder, "rejected")
    kept = {name: value for name, value in rejected["headers"].items() if name in GRAPH_HEADERS}
    assert kept.keys() == GRAPH_HEADERS.keys()
    assert all(len(value) == MAX_HEADER_CHARS and value.endswith("...") for value in kept.values())
    (access,) = [r for r in caplog.records if r.name == "webhook.access"]
    logged = json.dumps(access.fields)  # type: ignore[attr-defined]
    assert len(logged) < 2_000 < 20_000 * len(GRAPH_HEADERS)


@pytest.mark.parametrize(
    "headers",
    [
        GRAPH_HEADERS,
        {name.lower(): f"{name} value" for name in CORRELATION_HEADERS},
        {"Scenario-Id": "s" * (MAX_HEADER_CHARS + 1), "Request-Id": "", "Authorization": "Bearer secret"},
        {"User-Agent": "Microsoft-Skype/3.0,(Calling/1.0)", "X-Other": "kept out"},
        {},
    ],
)
def test_the_correlation_headers_read_off_the_environ_are_those_werkzeug_reads(headers: dict[str, str]) -> None:
    environ = EnvironBuilder(path="/api/calls", method="POST", headers=headers).get_environ()
    expected = correlation_headers(Request(environ).headers)
    assert environ_correlation_headers(environ) == expected
    assert "Authorization" not in expected
