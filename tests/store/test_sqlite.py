"""What only the SQLite store does: honest answers when another process holds the write lock."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from webhook import ConfigError, create_app
from webhook.builders import envelope, incoming_call, new_id
from webhook.store import open_store

from ..conftest import Recorder


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
