"""The embedded default: one SQLite file, shared safely by every worker process on one machine.

Each ``apply`` runs ``BEGIN IMMEDIATE``: the write lock is taken before the call is read, so two workers
applying notifications to the same call are serialized and the second one decides on what the first one
wrote. WAL lets readers (the read API) proceed during writes; ``busy_timeout`` makes a writer wait for the lock
instead of failing at once.

Durability: with ``SQLITE_SYNCHRONOUS=normal`` (the default) a commit is in the WAL, in the operating system's
cache, before ``apply`` returns: every 202 survives any crash of the receiver (a worker killed, gunicorn
restarted), and a power cut or a kernel crash may lose the last commits (those the OS had not yet written
back since the last background checkpoint flushed the WAL: see :mod:`.sqlite_checkpoints`). With ``full``
each transition is on disk before the 202: the WAL is flushed after the commit, outside the write lock, so
workers flush side by side (see ``_flush``), for about twice the cost of a notification.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from .. import codec
from ..clock import iso
from ..errors import ConfigError
from ..events import Decision, Event
from ..failures import Failure
from ..model import Call
from ..settings import default
from ..state import Needs
from ..timers import needs_keepalive
from .base import CallStore, Choose, Lease
from .rows import HISTORY_LIMIT, KEPT_PER_CALL, as_stored, json_rows, rows_of
from .sqlite_file import SQLiteFile
from .sqlite_rows import load_call, write_rows
from .sqlite_schema import WATCHED

logger = logging.getLogger("webhook.store")

_DELETE_EVENTS = "DELETE FROM outbox WHERE id IN ({})"


class SQLiteStore(SQLiteFile, CallStore):
    """A :class:`CallStore` in a SQLite file. Connections are per thread and per process (fork-safe).

    Opening does no write when the schema is current, and a store that cannot be used yet (locked, disk full,
    corrupt, deleted) never stops a process from starting: each use tries again and raises
    :class:`~webhook.errors.StoreUnavailable` with its reason until the store can be used. Before each use the
    path is checked to still name the file that was opened: a database deleted or replaced under a running
    receiver is reported (once per connection) and then reopened, instead of acknowledging writes into a file
    that no longer has a name.
    """

    engine = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = default("STORE_TIMEOUT_SECONDS"),
        synchronous: str = default("SQLITE_SYNCHRONOUS"),
        history_limit: int = HISTORY_LIMIT,
        kept_per_call: int = KEPT_PER_CALL,
    ) -> None:
        SQLiteFile.__init__(self, path, timeout=timeout, synchronous=synchronous)
        self.history_limit, self.kept_per_call = history_limit, kept_per_call
        self.url = f"sqlite:///{self.path}"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        """``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (SQLAlchemy's spelling)."""
        path = url[len("sqlite:///") :]
        if not path or path == ":memory:" or path.startswith("file:"):
            raise ConfigError(
                "WEBHOOK_STORE_URL: give the SQLite database a file path (sqlite:///PATH); "
                "an in-memory database cannot be shared between workers"
            )
        return cls(path, **options)

    def open(self) -> None:
        self._connect()

    def _decide_and_commit(self, call_id: str, now: str, choose: Choose, lease: Lease, needs: Needs) -> Decision | None:
        """All under the write lock; then the WAL is flushed (see :meth:`_flush`) before the decision returns."""
        conn = self._connect()
        delivered, carried = self._completions().take(), False
        try:
            with self._transaction(conn):
                if delivered:  # the rows of events delivered since this process last wrote leave with this commit
                    conn.execute(_DELETE_EVENTS.format(", ".join("?" * len(delivered))), delivered)
                loaded = load_call(conn, call_id, needs)
                decision = choose(loaded)
                event_ids = [] if decision is None else self._commit(conn, decision, loaded, needs, call_id, now, lease)
            carried = True
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        finally:
            if not carried:
                self._completions().add(delivered, first=True)
        self._fault = None
        if decision is None:
            return None
        self._flush()
        return as_stored(self, decision, needs, event_ids)

    def _commit(
        self,
        conn: sqlite3.Connection,
        decision: Decision,
        loaded: Call | None,
        needs: Needs,
        call_id: str,
        now: str,
        lease: Lease,
    ) -> list[int | None]:
        """Write a decision's call record, the rows it changed and its outbox rows (inside the caller's
        transaction); the outbox row of each of its events (None for those nobody receives)."""
        call, record = decision.call, None
        if call is not None:
            record = call.core_dict()
            conn.execute(
                "INSERT INTO calls (id, state, updated_at, seen_at, stale_since, keepalive_at, doc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, "
                "seen_at = excluded.seen_at, stale_since = excluded.stale_since, "
                "keepalive_at = excluded.keepalive_at, doc = excluded.doc",
                (
                    call.id,
                    call.state,
                    call.updated_at,
                    call.seen_at,
                    call.stale_since,
                    call.keepalive_at if needs_keepalive(call) else None,
                    codec.dumps(record),
                ),
            )
            write_rows(
                conn, call, rows_of(loaded or Call(id=call.id), call, needs), self.history_limit, self.kept_per_call
            )
        event_ids: list[int | None] = []
        for event in decision.events:
            event_id = None
            if lease.needs_delivery(event):
                event_id = conn.execute(
                    "INSERT INTO outbox (call_id, event, owner, lease_until, created_at) VALUES (?, ?, ?, ?, ?)",
                    (call_id, event.encode(call_record=record), lease.owner, lease.until, now),
                ).lastrowid
            event_ids.append(event_id)
        return event_ids

    def count_calls(self, what: str) -> int:
        condition = "(state IS NULL OR state != 'terminated')"
        if what == "stale":
            condition += " AND stale_since IS NOT NULL"
        ((count,),) = self._read(f"SELECT COUNT(*) FROM calls WHERE {condition}")
        assert isinstance(count, int)
        return count

    def quiet_calls(self, seen_before: float, limit: int = 100) -> list[str]:
        return self._call_ids(
            f"SELECT id FROM calls WHERE {WATCHED} AND seen_at < ? ORDER BY seen_at LIMIT ?",
            iso(seen_before),
            limit,
        )

    def keepalives_due(self, due_before: float, limit: int = 100) -> list[str]:
        return self._call_ids(
            "SELECT id FROM calls WHERE keepalive_at < ? AND state NOT IN ('terminating', 'terminated') "
            "ORDER BY keepalive_at LIMIT ?",
            iso(due_before),
            limit,
        )

    def _call_ids(self, query: str, *params: object) -> list[str]:
        return [str(call_id) for (call_id,) in self._read(query, params)]

    def _remove_events(self, event_ids: list[int]) -> None:
        # Losing this delete to a power cut only means delivering the events again (handlers are idempotent),
        # so unlike a transition it is not flushed to disk before returning.
        self._write(_DELETE_EVENTS.format(", ".join("?" * len(event_ids))), tuple(event_ids))

    def claim_orphans(
        self, owner: str, now: float, lease_until: float, is_dead: Callable[[str], bool], limit: int = 100
    ) -> list[Event]:
        conn = self._connect()
        try:
            with self._transaction(conn):
                # The owners first (a handful of processes), then only the rows to claim: the write lock is held
                # for what is taken, not for the whole outbox.
                owners = [
                    str(o) for (o,) in conn.execute("SELECT DISTINCT owner FROM outbox WHERE owner != ?", (owner,))
                ]
                dead = [other for other in owners if is_dead(other)]
                claimed = conn.execute(
                    f"SELECT id, event FROM outbox WHERE owner != ? AND (lease_until < ? "
                    f"OR owner IN ({', '.join('?' * len(dead))})) ORDER BY id LIMIT ?",
                    (owner, now, *dead, limit),
                ).fetchall()
                for row_id, _ in claimed:
                    conn.execute(
                        "UPDATE outbox SET owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                        (owner, lease_until, row_id),
                    )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        return [Event.decode(text, row_id, collections=self.read_collection) for row_id, text in claimed]

    def _count_events(self) -> int:
        ((count,),) = self._read("SELECT COUNT(*) FROM outbox")
        assert isinstance(count, int)
        return count

    def record_failure(self, call_id: str | None, handler: str, signal: str, event: str, error: str, now: str) -> int:
        cursor = self._write(
            "INSERT INTO failures (call_id, handler, signal, event, error, first_at, last_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (call_id, handler, signal, event, error, now, now),
        )
        self._flush()  # a failure must outlive a power cut, to be retried
        return int(cursor.lastrowid or 0)

    _FAILURE_COLUMNS = "id, call_id, handler, signal, event, error, attempts, status, first_at, last_at"

    def failures(self, *, include_resolved: bool = False, limit: int = 100) -> list[Failure]:
        where = "" if include_resolved else " WHERE status = 'pending'"
        rows = self._read(f"SELECT {self._FAILURE_COLUMNS} FROM failures{where} ORDER BY id LIMIT ?", (limit,))
        return [Failure(*row) for row in rows]  # type: ignore[arg-type]

    def failure(self, failure_id: int) -> Failure | None:
        rows = self._read(f"SELECT {self._FAILURE_COLUMNS} FROM failures WHERE id = ?", (failure_id,))
        return Failure(*rows[0]) if rows else None  # type: ignore[arg-type]

    def update_failure(self, failure_id: int, *, resolved: bool, error: str | None, now: str) -> None:
        self._write(
            "UPDATE failures SET attempts = attempts + 1, status = ?, error = COALESCE(?, error), last_at = ? "
            "WHERE id = ?",
            ("resolved" if resolved else "pending", error, now, failure_id),
        )

    def get(self, call_id: str) -> Call | None:
        rows = self._read("SELECT doc FROM calls WHERE id = ?", (call_id,))
        return self.stored(Call.from_dict(codec.loads(str(rows[0][0])))) if rows else None

    def read_collection(self, call_id: str, name: str, history_upto: int | None = None) -> Any:
        if name == "history":
            upto = history_upto if history_upto is not None else 2**62
            rows = self._read(
                "SELECT step FROM call_history WHERE call_id = ? AND seq < ? ORDER BY seq", (call_id, upto)
            )
            return [codec.loads(str(step)) for (step,) in rows]
        if name == "participants":
            rows = self._read("SELECT doc FROM call_participants WHERE call_id = ? ORDER BY position", (call_id,))
            return json_rows(str(doc) for (doc,) in rows)
        if name == "operations":
            rows = self._read("SELECT op_id, doc FROM call_operations WHERE call_id = ? ORDER BY id", (call_id,))
            return {str(op_id): codec.loads(str(doc)) for op_id, doc in rows}
        if name == "tones":
            rows = self._read("SELECT doc FROM call_tones WHERE call_id = ? ORDER BY id", (call_id,))
            return [codec.loads(str(doc)) for (doc,) in rows]
        raise ValueError(f"a call has no collection {name!r}")

    def list_calls(
        self, state: str | None = None, limit: int = 100, *, active: bool = False, app: str | None = None
    ) -> list[Call]:
        conditions, params = [], []
        if state is not None:
            conditions.append("state = ?")
            params.append(state)
        if active:
            conditions.append("(state IS NULL OR state != 'terminated')")
        if app is not None:
            # Read off the document, without an index: an operator's listing, which no notification waits for.
            conditions.append("json_extract(doc, '$.appId') = ?")
            params.append(app)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._read(f"SELECT doc FROM calls{where} ORDER BY seen_at DESC, id DESC LIMIT ?", (*params, limit))
        return [self.stored(Call.from_dict(codec.loads(str(doc)))) for (doc,) in rows]

    def close(self) -> None:
        self.flush_completed()
        self.checkpointer.stop()
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
            self._close_queue()
        self._local = threading.local()
