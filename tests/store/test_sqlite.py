"""What only the SQLite store does: honest answers when another process holds the write lock, or the file is
deleted, replaced or corrupt under the running receiver."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from webhook import ConfigError, create_app
from webhook.builders import call_notification, envelope, incoming_call, new_id, participant, roster_notification
from webhook.clock import epoch
from webhook.http import EXTENSION
from webhook.parse import load_notifications
from webhook.store import open_store
from webhook.store.sqlite_schema import SCHEMA_VERSION

from ..conftest import Recorder
from ..support import history_states


def test_a_store_busy_past_its_timeout_answers_503_and_stores_nothing(
    store_url: str, store_path: Path, recorder: Recorder
) -> None:
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "STORE_TIMEOUT_SECONDS": 0.2, "ADMIN_TOKEN": "t"})
    client = app.test_client()
    call_id = new_id()
    blocker = sqlite3.connect(store_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        response = client.post("/api/calls", json=envelope(incoming_call(call_id)))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"] == "store_unavailable"
    assert recorder.count("call_state_changed") == 0
    assert client.get(f"/api/calls/{call_id}", headers={"Authorization": "Bearer t"}).status_code == 404
    # Graph's retry goes through once the store is free.
    assert client.post("/api/calls", json=envelope(incoming_call(call_id))).status_code == 202
    assert recorder.count("call_state_changed", "incoming") == 1


def _queue_held_by_another_writer(store_path: Path) -> int:
    """The writers' lock file, locked here as one of the receiver's other workers holds it while it writes."""
    queue = os.open(f"{store_path}-lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(queue, fcntl.LOCK_EX)
    return queue


def test_writers_wait_their_turn_and_one_held_past_the_timeout_answers_503(
    store_url: str, store_path: Path, recorder: Recorder
) -> None:
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "STORE_TIMEOUT_SECONDS": 0.3, "ADMIN_TOKEN": "t"})
    client = app.test_client()
    assert _post(client, new_id()).status_code == 202  # opened: the schema is there, the queue file too
    queue = _queue_held_by_another_writer(store_path)
    try:
        refused = _post(client, new_id())
    finally:
        os.close(queue)  # closing the file lets go of its lock
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert refused.get_json()["details"] == {"reason": "busy"}
    assert client.get("/readyz").status_code == 200  # free again: readiness's write goes through the queue too
    # A turn shorter than the timeout is waited for.
    queue = _queue_held_by_another_writer(store_path)
    threading.Timer(0.1, os.close, (queue,)).start()
    call_id = new_id()
    assert _post(client, call_id).status_code == 202
    assert recorder.count("call_state_changed", "incoming") == 2
    assert client.get(f"/api/calls/{call_id}", headers={"Authorization": "Bearer t"}).status_code == 200


def test_a_lock_file_that_cannot_be_opened_leaves_writers_to_sqlite(store_url: str, store_path: Path) -> None:
    store_path.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{store_path}-lock").mkdir()  # a directory is no lock file: the queue is skipped, never the write
    client = _app(store_url).test_client()
    for _ in range(3):
        assert _post(client, new_id()).status_code == 202
    assert len(open_store(store_url).list_calls()) == 3


def test_a_database_from_a_newer_version_is_refused(store_path: Path) -> None:
    open_store(f"sqlite:///{store_path}")
    with sqlite3.connect(store_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigError, match="newer comms-webhook"):
        open_store(f"sqlite:///{store_path}")


@pytest.mark.parametrize(("synchronous", "flushed"), [("full", True), ("normal", False)])
def test_a_transition_is_flushed_to_disk_before_it_is_acknowledged(
    store_url: str, store_path: Path, monkeypatch: pytest.MonkeyPatch, synchronous: str, flushed: bool
) -> None:
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "SQLITE_SYNCHRONOUS": synchronous})
    synced: list[str] = []
    real_fsync = os.fsync

    def watching_fsync(fd: int) -> None:  # the real fsync, and a note of which file it flushed
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watching_fsync)
    assert app.test_client().post("/api/calls", json=envelope(incoming_call(new_id()))).status_code == 202
    assert (f"{store_path}-wal" in synced) is flushed


ADMIN = {"Authorization": "Bearer t"}


def _app(store_url: str) -> Any:
    return create_app({"AUTH": "disabled", "STORE_URL": store_url, "ADMIN_TOKEN": "t", "OUTBOX_SWEEP_SECONDS": 0})


def _post(client: Any, call_id: str) -> Any:
    return client.post("/api/calls", json=envelope(incoming_call(call_id)))


def _database_files(store_path: Path) -> list[Path]:
    return [store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")]


def test_a_store_deleted_under_the_receiver_is_reported_then_reopened_and_nothing_later_is_lost(
    store_url: str, store_path: Path
) -> None:
    client = _app(store_url).test_client()
    assert _post(client, new_id()).status_code == 202
    for path in _database_files(store_path):
        path.unlink(missing_ok=True)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["store"]["reason"] == "replaced"
    assert str(store_path.parent) not in ready.get_data(as_text=True)  # anyone may read /readyz: no paths
    later = new_id()
    assert _post(client, later).status_code == 202  # into the file now at the path, not the deleted one
    assert client.get("/readyz").status_code == 200
    restarted = _app(store_url).test_client()
    assert restarted.get(f"/api/calls/{later}", headers=ADMIN).status_code == 200


def test_a_store_replaced_under_the_receiver_answers_503_once_then_uses_the_replacement(
    tmp_path: Path, store_url: str, store_path: Path
) -> None:
    client = _app(store_url).test_client()
    first = new_id()
    assert _post(client, first).status_code == 202
    backup = tmp_path / "backup.sqlite3"
    with sqlite3.connect(store_path) as source, sqlite3.connect(backup) as target:
        source.backup(target)
    assert _post(client, new_id()).status_code == 202  # not in the backup
    os.replace(backup, store_path)  # the operator restores the backup while the receiver runs
    second = new_id()
    refused = _post(client, second)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert refused.get_json()["details"] == {"reason": "replaced"}
    assert str(store_path) not in refused.get_data(as_text=True)
    assert _post(client, second).status_code == 202  # Graph's retry
    restarted = _app(store_url).test_client()
    for call_id in (first, second):
        assert restarted.get(f"/api/calls/{call_id}", headers=ADMIN).status_code == 200


def test_a_database_deleted_without_its_wal_is_never_recreated_beside_it(store_url: str, store_path: Path) -> None:
    client = _app(store_url).test_client()
    assert _post(client, new_id()).status_code == 202
    store_path.unlink()  # the -wal of the old file stays: a new file beside it would adopt its pages
    for _ in range(2):
        response = _post(client, new_id())
        assert response.status_code == 503
        assert response.get_json()["details"] == {"reason": "replaced"}
    assert not store_path.exists()
    assert client.get("/readyz").status_code == 503


def _corrupt(store_path: Path) -> None:
    """Overwrite every page after the first: the header still says SQLite, the tables are garbage."""
    size = store_path.stat().st_size
    with store_path.open("r+b") as file:
        file.seek(4096)
        file.write(random.Random(7).randbytes(size - 4096))


@pytest.mark.parametrize("damage", ["pages", "header"])
def test_a_corrupt_store_boots_answers_503_and_fails_readiness_until_restored(
    tmp_path: Path, store_url: str, store_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(store_url)
    for _ in range(20):
        assert _post(app.test_client(), new_id()).status_code == 202
    app.extensions[EXTENSION].store.close()  # checkpointed into the file: the damage is what the next start sees
    backup = tmp_path / "backup.sqlite3"
    shutil.copy(store_path, backup)
    if damage == "pages":
        _corrupt(store_path)
    else:
        store_path.write_bytes(b"this is not a database file" * 200)
    client = _app(store_url).test_client()  # boots: a worker must start whatever the store's state
    for _ in range(3):
        response = _post(client, new_id())
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.get_json()["details"] == {"reason": "corrupt"}
    assert len([r for r in caplog.records if r.levelname == "CRITICAL" and "CORRUPT" in r.message]) == 1
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["store"]["reason"] == "corrupt"
    os.replace(backup, store_path)
    for path in _database_files(store_path)[1:]:
        path.unlink(missing_ok=True)
    # The connection a readable header let it open notices the new file once; an unreadable one opened none.
    if damage == "pages":
        assert _post(client, new_id()).get_json()["details"] == {"reason": "replaced"}
    assert _post(client, new_id()).status_code == 202
    assert client.get("/readyz").status_code == 200


V4 = Path(__file__).resolve().parent.parent / "data" / "store-v4.sqlite3"


def test_a_store_written_by_the_previous_release_is_migrated_once_in_place(tmp_path: Path) -> None:
    """tests/data/store-v4.sqlite3 was written by the release that kept each call as one document (schema 4):
    three calls (one with a roster, an operation, two tones and a hold), 14 undelivered events, a failure."""
    path = tmp_path / "calls.sqlite3"
    shutil.copy(V4, path)
    before = {call_id: json.loads(doc) for call_id, doc in sqlite3.connect(path).execute("SELECT id, doc FROM calls")}
    store = open_store(f"sqlite:///{path}")
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    for call_id, old in before.items():
        migrated = store.get(call_id)
        assert migrated is not None
        new = migrated.to_dict()
        assert {key: new[key] for key in old} == old  # every field as it was
        assert new["historyTotal"] == len(old["history"]) and new["historyDropped"] == 0
    docs = [json.loads(doc) for (doc,) in sqlite3.connect(path).execute("SELECT doc FROM calls")]
    assert not any("history" in doc or "participants" in doc for doc in docs)  # the collections left the record
    leftover = store.claim_orphans("me", 1e12, 1e12, lambda owner: True)
    assert len(leftover) == 14 and all(event.kwargs.get("call") is not None for event in leftover)
    assert [f.handler for f in store.failures()] == ["mybot.greet"]
    call_id = "11111111-0000-0000-0000-000000000001"
    (hold,) = load_notifications(envelope(call_notification(call_id, "hold")))
    assert store.apply(hold, "2026-11-02T00:00:00.000Z").outcome == "applied"
    assert history_states(store.get(call_id))[-2:] == ["established", "hold"]  # type: ignore[arg-type]
    assert len(store.get(call_id).participants) == 3  # type: ignore[union-attr]
    mtime = path.stat().st_mtime_ns
    open_store(f"sqlite:///{path}").get(call_id)  # once: a second start reads the version and writes nothing
    assert path.stat().st_mtime_ns == mtime


V5 = V4.with_name("store-v5.sqlite3")
_FIVE = ["55555555-0000-0000-0000-00000000000" + str(n) for n in (1, 2, 3)]


def test_a_schema_5_store_keeps_its_calls_and_events_and_reads_them_through_the_new_indexes(tmp_path: Path) -> None:
    """tests/data/store-v5.sqlite3 was written by the release before schema 6 (three indexes on seen_at, one on
    the outbox): calls established, terminated and establishing, heard in that order; 6 events of a dead worker;
    a failure."""
    path = tmp_path / "calls.sqlite3"
    shutil.copy(V5, path)
    store = open_store(f"sqlite:///{path}")
    conn = store._connect()  # type: ignore[attr-defined]
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"calls_heard", "calls_watched"} <= indexes
    assert not indexes & {"calls_by_seen", "calls_by_state_heard", "calls_by_heard", "outbox_by_owner"}
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    one, ended, incoming = _FIVE
    assert [call.id for call in store.list_calls()] == [incoming, ended, one]
    assert [call.id for call in store.list_calls("established")] == [one]
    assert [call.id for call in store.list_calls(active=True)] == [incoming, one]
    assert store.quiet_calls(epoch("2026-12-02T00:00:00.000Z") or 0) == [one, incoming]  # an ended call is not watched
    assert store.quiet_calls(epoch("2026-12-01T10:00:03.000Z") or 0) == [one]
    reads = [text for text in statements if text.startswith("SELECT") and "FROM calls" in text]
    conn.set_trace_callback(None)
    assert len(reads) == 5
    for text in reads:  # each listing and the sweeper's query read an index, never the whole table
        plan = " ".join(str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {text}"))
        assert "USING INDEX calls_heard" in plan or "USING INDEX calls_watched" in plan, (text, plan)
    orphans = store.claim_orphans("me", 1e12, 1e12, lambda owner: owner == "worker-gone")
    assert len(orphans) == 6 and [event.id for event in orphans] == sorted(event.id for event in orphans)  # type: ignore[type-var]
    assert {event.kwargs["call"].id for event in orphans} == set(_FIVE)
    assert [f.handler for f in store.failures()] == ["mybot.greet"]
    (hung_up,) = load_notifications(envelope(call_notification(one, "terminated")))
    assert store.apply(hung_up, "2026-12-01T10:00:09.000Z").outcome == "applied"
    assert store.quiet_calls(epoch("2026-12-02T00:00:00.000Z") or 0) == [incoming]


def test_a_roster_change_rewrites_only_the_participants_that_changed(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'calls.sqlite3'}")
    call_id = new_id()
    people = [participant(new_id(), f"person {index}") for index in range(250)]
    for body in (envelope(incoming_call(call_id)), envelope(roster_notification(call_id, people))):
        for notification in load_notifications(body):
            store.apply(notification, "2026-01-01T00:00:00.000Z")
    conn = sqlite3.connect(tmp_path / "calls.sqlite3")
    conn.execute("CREATE TEMP TABLE written (position INTEGER)")
    conn.execute(
        "CREATE TEMP TRIGGER count_writes AFTER INSERT ON main.call_participants "
        "BEGIN INSERT INTO written VALUES (new.position); END"
    )
    muted = [*people[:7], {**people[7], "isMuted": True}, *people[8:]]
    (notification,) = load_notifications(envelope(roster_notification(call_id, muted)))
    # The trigger lives in this connection only: apply through it, as the store would.
    store._local.conn = conn
    conn.isolation_level = None
    store.apply(notification, "2026-01-01T00:00:01.000Z")
    assert [position for (position,) in conn.execute("SELECT position FROM written")] == [7]
