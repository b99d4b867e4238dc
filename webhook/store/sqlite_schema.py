"""The SQLite store's schema, and the migration of a database of any earlier version (or of none) to it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .. import codec
from ..model import Call
from ..state import Needs
from .rows import Rows, rows_of

SCHEMA_VERSION = 6
#: A call the sweeper watches: heard of but not yet marked stale, and not ended (the sweeper's query repeats it
#: term for term, or SQLite would not read the partial index that holds only these calls).
WATCHED = "stale_since IS NULL AND (state IS NULL OR state != 'terminated')"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY,
    state TEXT,
    updated_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    event TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_until REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT,
    handler TEXT NOT NULL,
    signal TEXT NOT NULL,
    event TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'pending',
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_by_status ON failures (status, id);
CREATE TABLE IF NOT EXISTS call_history (
    call_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    step TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS call_participants (
    call_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (call_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS call_operations (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    op_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (call_id, op_id)
);
CREATE INDEX IF NOT EXISTS call_operations_in_order ON call_operations (call_id, id);
CREATE TABLE IF NOT EXISTS call_tones (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    sequence_id INTEGER,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS call_tones_in_order ON call_tones (call_id, id);
CREATE INDEX IF NOT EXISTS call_tones_by_sequence ON call_tones (call_id, sequence_id);
"""
# Columns added after the first release, for databases created before them.
_ADDED_COLUMNS = {
    "seen_at": "ALTER TABLE calls ADD COLUMN seen_at TEXT",
    "stale_since": "ALTER TABLE calls ADD COLUMN stale_since TEXT",
    "keepalive_at": "ALTER TABLE calls ADD COLUMN keepalive_at TEXT",
}


def migrate(conn: sqlite3.Connection, write_rows: Callable[[sqlite3.Connection, Call, Rows], None]) -> None:
    """Bring an older (or empty) database to the current schema, inside the caller's write transaction."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    for column, statement in _ADDED_COLUMNS.items():
        if column not in columns:
            conn.execute(statement)
    # Only calls that need keepAlive have a keepalive_at: the index holds the live ones, not the history.
    conn.execute("CREATE INDEX IF NOT EXISTS calls_by_keepalive ON calls (keepalive_at) WHERE keepalive_at IS NOT NULL")
    _index_what_is_read(conn)
    _move_collections_to_rows(conn, write_rows)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _index_what_is_read(conn: sqlite3.Connection) -> None:
    """Schema 6: each index whose key holds ``seen_at`` is a page written on every commit (a notification
    changes it), so two serve every query instead of three: the listings (newest first, filtered by state in
    the index) and the calls the sweeper watches (partial: an ended call leaves it). The outbox is scanned, not
    indexed: it holds only the events being delivered, and its index cost a page per commit too."""
    conn.execute("CREATE INDEX IF NOT EXISTS calls_heard ON calls (seen_at, state)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS calls_watched ON calls (seen_at) WHERE {WATCHED}")
    for replaced in ("calls_by_seen", "calls_by_state_heard", "calls_by_heard", "calls_by_state", "calls_by_update"):
        conn.execute(f"DROP INDEX IF EXISTS {replaced}")
    conn.execute("DROP INDEX IF EXISTS outbox_by_owner")


def _move_collections_to_rows(
    conn: sqlite3.Connection, write_rows: Callable[[sqlite3.Connection, Call, Rows], None]
) -> None:
    """Schema 5: a call's history, roster, operations and tones leave its document for rows of their own (a
    document rewritten whole on every notification cost as much as the call was long), written as every
    decision writes its rows."""
    for call_id, doc in conn.execute("SELECT id, doc FROM calls").fetchall():
        stored = codec.loads(doc)
        if not any(key in stored for key in ("history", "participants", "operations", "tones")):
            continue
        call = Call.from_dict(stored)
        write_rows(conn, call, rows_of(Call(id=call_id), call, Needs(roster=True)))
        conn.execute("UPDATE calls SET doc = ? WHERE id = ?", (codec.dumps(call.core_dict()), call_id))
