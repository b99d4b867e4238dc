"""The SQLite store: durable, atomic across processes, and honest when it is busy."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

from webhook import create_app
from webhook.builders import call_notification, envelope, incoming_call, new_id
from webhook.schemas import load_notifications
from webhook.store import SQLiteStore, open_store

from .conftest import Recorder


def notifications(*bodies: dict[str, Any]) -> list[Any]:
    return [n for body in bodies for n in load_notifications(body)]


def test_calls_survive_reopening_the_file(store_path: Path) -> None:
    call_id = new_id()
    store = SQLiteStore(store_path)
    for n in notifications(envelope(incoming_call(call_id)), envelope(call_notification(call_id, "establishing"))):
        store.apply(n, "2026-01-01T00:00:00.000Z")
    store.close()
    reopened = open_store(f"sqlite:///{store_path}")
    call = reopened.get(call_id)
    assert call is not None
    assert [step["to"] for step in call.history] == ["incoming", "establishing"]
    assert [c.id for c in reopened.list_calls("establishing")] == [call_id]
    assert reopened.list_calls("incoming") == []


def _apply_in_process(args: tuple[str, str, int]) -> int:
    path, call_id, copies = args
    store = SQLiteStore(path)
    (n,) = notifications(envelope(call_notification(call_id, "established")))
    return sum(len(store.apply(n, "t").events) for _ in range(copies))


def test_the_same_transition_from_eight_processes_is_applied_once(store_path: Path) -> None:
    call_id = new_id()
    SQLiteStore(store_path)
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        events = pool.map(_apply_in_process, [(str(store_path), call_id, 5)] * 8)
    assert sum(events) == 1
    call = SQLiteStore(store_path).get(call_id)
    assert call is not None
    assert call.duplicates == 39
    assert len(call.history) == 1


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
