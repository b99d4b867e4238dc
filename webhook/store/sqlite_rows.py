"""A call's rows in SQLite: what ``decide`` is given of them, and how a decision's rows are written (its new
transitions, the roster positions that changed, operations and tones, the oldest beyond the limits removed)."""

from __future__ import annotations

import sqlite3

from .. import codec
from ..model import Call
from ..state import Needs
from .rows import HISTORY_LIMIT, KEPT_PER_CALL, Rows, json_rows, partial_call


def load_call(conn: sqlite3.Connection, call_id: str, needs: Needs) -> Call | None:
    """The call's own record with what ``needs`` asks of its collections (what ``decide`` is given), or None."""
    row = conn.execute("SELECT doc FROM calls WHERE id = ?", (call_id,)).fetchone()
    if row is None:
        return None
    roster, operation, tones = [], None, []
    if needs.roster:
        rows = conn.execute("SELECT doc FROM call_participants WHERE call_id = ? ORDER BY position", (call_id,))
        roster = json_rows(doc for (doc,) in rows)
    if needs.operation is not None:
        found = conn.execute(
            "SELECT doc FROM call_operations WHERE call_id = ? AND op_id = ?", (call_id, needs.operation)
        ).fetchone()
        operation = codec.loads(found[0]) if found else None
    if needs.tone_sequence is not None:
        rows = conn.execute(
            "SELECT doc FROM call_tones WHERE call_id = ? AND sequence_id = ?", (call_id, needs.tone_sequence)
        )
        tones = [codec.loads(doc) for (doc,) in rows]
    return partial_call(Call.from_dict(codec.loads(row[0])), needs, roster, operation, tones)


def write_rows(
    conn: sqlite3.Connection, call: Call, rows: Rows, history_limit: int = HISTORY_LIMIT, kept: int = KEPT_PER_CALL
) -> None:
    """Write what a decision changed beyond the call's own record; the oldest beyond the limits go."""
    call_id = call.id
    if rows.history:
        conn.executemany(
            "INSERT OR REPLACE INTO call_history (call_id, seq, step) VALUES (?, ?, ?)",
            [(call_id, seq, codec.dumps(step)) for seq, step in rows.history],
        )
        if call.history_total > history_limit:
            conn.execute(
                "DELETE FROM call_history WHERE call_id = ? AND seq < ?",
                (call_id, call.history_total - history_limit),
            )
    if rows.roster is not None:
        conn.executemany(
            "INSERT OR REPLACE INTO call_participants (call_id, position, doc) VALUES (?, ?, ?)",
            [(call_id, position, codec.dumps(entry)) for position, entry in rows.roster],
        )
        conn.execute("DELETE FROM call_participants WHERE call_id = ? AND position >= ?", (call_id, rows.roster_length))
    for op_id, op in rows.operations:
        conn.execute(
            "INSERT INTO call_operations (call_id, op_id, doc) VALUES (?, ?, ?) "
            "ON CONFLICT (call_id, op_id) DO UPDATE SET doc = excluded.doc",
            (call_id, op_id, codec.dumps(op)),
        )
    if rows.tones:
        conn.executemany(
            "INSERT INTO call_tones (call_id, sequence_id, doc) VALUES (?, ?, ?)",
            [(call_id, tone.get("sequenceId"), codec.dumps(tone)) for tone in rows.tones],
        )
    for table, added in (("call_operations", rows.operations), ("call_tones", rows.tones)):
        if added:  # the oldest go beyond the limit; counted per write only where something was added
            conn.execute(
                f"DELETE FROM {table} WHERE call_id = ? AND id <= "
                f"(SELECT id FROM {table} WHERE call_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (call_id, call_id, kept),
            )
