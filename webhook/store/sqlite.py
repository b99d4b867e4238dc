"""The embedded default: one SQLite file, shared safely by every worker process on one machine.

Each ``apply`` runs ``BEGIN IMMEDIATE``: the write lock is taken before the call is read, so two workers
applying notifications to the same call are serialized and the second one decides on what the first one
wrote. WAL lets readers (the read API) proceed during writes; ``busy_timeout`` makes a writer wait for the lock
instead of failing at once; ``synchronous=FULL`` makes a commit durable before the 202 is sent.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

from ..errors import ConfigError, StoreError, StoreUnavailable
from ..model import Call, Notification
from ..state import Decision, decide
from .base import CallStore

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY,
    state TEXT,
    updated_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_state ON calls (state, updated_at);
CREATE INDEX IF NOT EXISTS calls_by_update ON calls (updated_at);
"""


class SQLiteStore(CallStore):
    """A :class:`CallStore` in a SQLite file. Connections are per thread and per process (fork-safe)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.timeout = timeout
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"WEBHOOK_STORE_URL: cannot create the folder of {self.path}: {exc}") from exc
        self._migrate()

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 5.0) -> SQLiteStore:
        """``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (SQLAlchemy's spelling)."""
        path = url[len("sqlite:///") :]
        if not path or path == ":memory:" or path.startswith("file:"):
            raise ConfigError(
                "WEBHOOK_STORE_URL: give the SQLite database a file path (sqlite:///PATH); "
                "an in-memory database cannot be shared between workers"
            )
        return cls(path, timeout=timeout)

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the SQLite store {self.path}: {exc}") from exc
        self._local.conn = conn
        self._local.pid = os.getpid()
        return conn

    def _migrate(self) -> None:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > _SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise ConfigError(
                    f"the store {self.path} was written by a newer comms-webhook (schema {version}); upgrade"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _translate(exc, self.path) from exc

    def apply(self, notification: Notification, now: str) -> Decision:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT doc FROM calls WHERE id = ?", (notification.call_id,)).fetchone()
                current = Call.from_dict(json.loads(row[0])) if row else None
                decision = decide(current, notification, now)
                if decision.call is not None:
                    call = decision.call
                    conn.execute(
                        "INSERT INTO calls (id, state, updated_at, doc) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
                        "updated_at = excluded.updated_at, doc = excluded.doc",
                        (call.id, call.state, call.updated_at, json.dumps(call.to_dict())),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        return decision

    def get(self, call_id: str) -> Call | None:
        try:
            row = self._connect().execute("SELECT doc FROM calls WHERE id = ?", (call_id,)).fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        return Call.from_dict(json.loads(row[0])) if row else None

    def list_calls(self, state: str | None = None, limit: int = 100, *, active: bool = False) -> list[Call]:
        conditions, params = [], []
        if state is not None:
            conditions.append("state = ?")
            params.append(state)
        if active:
            conditions.append("(state IS NULL OR state != 'terminated')")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        query = f"SELECT doc FROM calls{where} ORDER BY updated_at DESC, id LIMIT ?"
        try:
            rows = self._connect().execute(query, (*params, limit)).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        return [Call.from_dict(json.loads(doc)) for (doc,) in rows]

    def ping(self) -> None:
        try:
            self._connect().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    # Locked or busy past the timeout, disk full, file unreadable: the sender should retry later.
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable(f"the SQLite store {path} is unavailable: {exc}")
    return StoreError(f"the SQLite store {path} failed: {exc}")
