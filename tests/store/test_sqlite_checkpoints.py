"""Checkpoints off the request path: the WAL is copied back into the database file by one background thread per
machine, within a round of a commit, and never by a commit below the WAL's limit."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from webhook import create_app
from webhook.builders import call_notification, envelope, incoming_call, new_id
from webhook.clock import utc_now
from webhook.parse import load_notifications
from webhook.store import SQLiteStore, open_store

from ..support import until


def _in_database_file(store_path: Path) -> set[str]:
    """The calls the database file itself holds, without the WAL: what checkpoints copied so far."""
    try:
        with sqlite3.connect(f"file:{quote(str(store_path))}?immutable=1", uri=True) as conn:
            return {str(call_id) for (call_id,) in conn.execute("SELECT id FROM calls")}
    except sqlite3.DatabaseError:  # a page being copied as it is read, or no table yet: ask again
        return set()


def _established(store: SQLiteStore, count: int) -> set[str]:
    ids = {new_id() for _ in range(count)}
    for call_id in ids:
        (notification,) = load_notifications(envelope(call_notification(call_id, "established")))
        store.apply(notification, utc_now())
    return ids


def _opened(store_url: str) -> SQLiteStore:
    store = open_store(store_url)
    assert isinstance(store, SQLiteStore)
    return store


def test_an_acknowledged_notification_reaches_the_database_file_within_a_round(
    store_url: str, store_path: Path
) -> None:
    client = create_app({"AUTH": "disabled", "STORE_URL": store_url, "OUTBOX_SWEEP_SECONDS": 0}).test_client()
    call_id = new_id()
    # One commit, far below the 1000 WAL pages at which SQLite's own default would copy it back.
    assert client.post("/api/calls", json=envelope(incoming_call(call_id))).status_code == 202
    until(lambda: call_id in _in_database_file(store_path), "the call copied into the database file", timeout=5)


def test_commits_leave_the_copying_to_the_checkpointer(store_url: str, store_path: Path) -> None:
    store = _opened(store_url)
    store.checkpointer.stop()
    written = _established(store, 300)  # about 3000 WAL pages: SQLite's default would have copied most of them
    assert Path(f"{store_path}-wal").stat().st_size > 1000 * 4096
    assert not written & _in_database_file(store_path)
    store.checkpointer.start()
    until(lambda: written <= _in_database_file(store_path), "every call copied once the checkpointer runs")
    store.close()


def test_one_process_checkpoints_and_another_takes_over_when_it_stops(store_url: str, store_path: Path) -> None:
    first, second = _opened(store_url), _opened(store_url)  # as two workers: each opens its own lock file
    _established(first, 1)
    elected = until(
        lambda: next((store for store in (first, second) if store.checkpointer.rounds), None), "a checkpointer"
    )
    other = second if elected is first else first
    assert other.checkpointer.rounds == 0
    elected.close()  # the worker stops: its thread lets go of the lock
    written = _established(other, 1)
    until(lambda: other.checkpointer.rounds > 0, "the other worker checkpointing")
    until(lambda: written <= _in_database_file(store_path), "its commit copied")
    other.close()


def test_without_a_lock_file_every_process_checkpoints(store_url: str, store_path: Path) -> None:
    store_path.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{store_path}-checkpointer").mkdir()  # a directory is no lock file
    first, second = _opened(store_url), _opened(store_url)
    written = _established(first, 1)
    until(lambda: first.checkpointer.rounds and second.checkpointer.rounds, "both checkpointing")
    until(lambda: written <= _in_database_file(store_path), "the commit copied")
    first.close()
    second.close()


def test_a_checkpointer_never_creates_a_store_that_was_deleted(store_url: str, store_path: Path) -> None:
    store = _opened(store_url)
    _established(store, 1)
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store_path}{suffix}").unlink(missing_ok=True)
    assert store.checkpointer.checkpoint(None) is None
    assert not store_path.exists()


def test_a_forked_child_does_not_keep_its_parents_checkpoints_from_another_process(
    store_url: str, store_path: Path
) -> None:
    first = _opened(store_url)
    _established(first, 1)
    until(lambda: first.checkpointer.rounds, "the first store checkpointing")
    child = os.fork()
    if child == 0:  # a worker's own child (a handler's subprocess, say), alive longer than its parent's store
        time.sleep(30)
        os._exit(0)
    try:
        first.close()
        second = _opened(store_url)
        written = _established(second, 1)
        until(lambda: second.checkpointer.rounds > 0, "another store checkpointing while the child lives")
        until(lambda: written <= _in_database_file(store_path), "its commit copied")
        second.close()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
