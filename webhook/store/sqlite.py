"""The embedded default: one SQLite file, shared safely by every worker process on one machine.

Each ``apply`` runs ``BEGIN IMMEDIATE``: the write lock is taken before the call is read, so two workers
applying notifications to the same call are serialized and the second one decides on what the first one
wrote. WAL lets readers (the read API) proceed during writes; ``busy_timeout`` makes a writer wait for the lock
instead of failing at once.

Durability: with ``SQLITE_SYNCHRONOUS=normal`` (the default) a commit is in the WAL, in the operating system's
cache, before ``apply`` returns: every 202 survives any crash of the receiver (a worker killed, gunicorn
restarted), and a power cut or a kernel crash may lose the last commits (those the OS had not yet written
back; SQLite's checkpoints flush the rest). With ``full`` each transition is on disk before the 202: the WAL
is flushed after the commit, outside the write lock, so workers flush side by side (see ``_flush``), for
about twice the cost of a notification.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import codec
from ..clock import iso
from ..errors import ConfigError, StoreError, StoreUnavailable
from ..events import Decision, Event
from ..failures import Failure
from ..model import Call
from ..settings import default
from ..state import Needs
from ..timers import needs_keepalive
from .base import CallStore, Choose, Lease
from .rows import Rows, as_stored, json_rows, partial_call, rows_of
from .sqlite_schema import SCHEMA_VERSION, migrate

logger = logging.getLogger("webhook.store")

_DELETE_EVENTS = "DELETE FROM outbox WHERE id IN ({})"

#: Transitions kept per call (the oldest go beyond; ``historyDropped`` counts them): WEBHOOK_HISTORY_LIMIT.
HISTORY_LIMIT: int = default("HISTORY_LIMIT")
#: Operations and tones kept per call, the latest.
KEPT_PER_CALL = 1_000


class SQLiteStore(CallStore):
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
        self.path = Path(path)
        self.history_limit, self.kept_per_call = history_limit, kept_per_call
        self.url = f"sqlite:///{self.path}"
        self.timeout = timeout
        if synchronous not in ("full", "normal"):
            raise ConfigError(f"WEBHOOK_SQLITE_SYNCHRONOUS must be full or normal, got {synchronous!r}")
        self.synchronous = synchronous
        self._wal = Path(f"{self.path}-wal")
        self._local = threading.local()
        self._schema_ready_in: tuple[int, int] | None = None  # the file whose schema this process checked
        self._schema_lock = threading.Lock()
        self._fault: StoreUnavailable | None = None  # what made this process's last use fail, until one succeeds

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

    def _connect(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and getattr(local, "pid", None) == os.getpid():
            if _identity(self.path) == local.identity:
                return conn
            # Sound while the connection is open: the file it holds cannot give its inode to another.
            self._forget(conn)
            self._schema_ready_in = None  # closed now, its inode may name the next file
            logger.error(
                "the SQLite store %s was deleted or replaced while open: what was written to the old file since is "
                "not in the new one; reopening the path (and creating an empty store if nothing is there)",
                self.path,
            )
            raise StoreUnavailable(
                f"the SQLite store {self.path} was deleted or replaced while open", reason="replaced"
            )
        if _identity(self.path) is None and self._wal.exists():
            # A new database beside the WAL of a deleted one would take that WAL's pages as its own.
            raise StoreUnavailable(
                f"the SQLite store {self.path} is missing but its WAL {self._wal.name} is still there: restore the "
                f"database, or delete {self._wal.name} and {self.path.name}-shm to start an empty store",
                reason="replaced",
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the SQLite store {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")  # a write: only when the file is not WAL yet
            # Commits do not wait for the disk inside the write lock: apply() flushes the WAL itself, after
            # the lock is released and before the caller acknowledges (see _flush).
            conn.execute("PRAGMA synchronous = NORMAL")
            identity = _identity(self.path)
            self._prepare_schema(conn, identity)
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc) from exc
        except BaseException:
            conn.close()
            raise
        local.conn, local.pid, local.identity = conn, os.getpid(), identity
        return conn

    def _forget(self, conn: sqlite3.Connection) -> None:
        self._local.conn = None
        with suppress(sqlite3.Error):
            conn.close()

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        """Our error for SQLite's: what a retry may outlive (locked, disk full, file unreadable or corrupt) is
        :class:`StoreUnavailable` with its reason, remembered for :meth:`ping`; anything else is a bug
        (:class:`StoreError`, a 500)."""
        code = _error_code(exc)
        if code in (_CORRUPT, _NOTADB):
            if self._fault is None or self._fault.reason != "corrupt":
                logger.critical(
                    "the SQLite store %s is CORRUPT (%s): every notification is refused with 503 until the file is "
                    "restored from a backup or moved aside; Graph retries for a while, then gives up",
                    self.path,
                    exc,
                )
            self._fault = StoreUnavailable(f"the SQLite store {self.path} is corrupt: {exc}", reason="corrupt")
            return self._fault
        if isinstance(exc, sqlite3.OperationalError):
            reason = _REASONS.get(code, "unavailable") if code is not None else "unavailable"
            self._fault = StoreUnavailable(f"the SQLite store {self.path} is unavailable: {exc}", reason=reason)
            return self._fault
        return StoreError(f"the SQLite store {self.path} failed: {exc}")

    def _prepare_schema(self, conn: sqlite3.Connection, identity: tuple[int, int] | None) -> None:
        """Create or migrate the schema once per process and file; a current schema is only read, never
        written, so that a worker starts while another process holds the write lock or the disk is full."""
        if self._schema_ready_in == identity:
            return
        with self._schema_lock:
            if self._schema_ready_in == identity or self._schema_version(conn) == SCHEMA_VERSION:
                self._schema_ready_in = identity
                return
            conn.execute("BEGIN IMMEDIATE")  # the lock: of several processes starting at once, one migrates
            try:
                if self._schema_version(conn) != SCHEMA_VERSION:
                    migrate(conn, self._write_rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._schema_ready_in = identity

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise ConfigError(f"the store {self.path} was written by a newer comms-webhook (schema {version}); upgrade")
        return int(version)

    def _decide_and_commit(self, call_id: str, now: str, choose: Choose, lease: Lease, needs: Needs) -> Decision | None:
        """All under the write lock; then the WAL is flushed (see :meth:`_flush`) before the decision returns."""
        conn = self._connect()
        delivered, carried = self._completions().take(), False
        try:
            with self._transaction(conn):
                if delivered:  # the rows of events delivered since this process last wrote leave with this commit
                    conn.execute(_DELETE_EVENTS.format(", ".join("?" * len(delivered))), delivered)
                loaded = self._load(conn, call_id, needs)
                decision = choose(loaded)
                committed = (
                    None if decision is None else self._commit(conn, decision, loaded, needs, call_id, now, lease)
                )
            carried = True
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        finally:
            if not carried:
                self._completions().add(delivered, first=True)
        self._fault = None
        if committed is None:
            return None
        self._flush()
        return as_stored(self, committed, needs)

    def _load(self, conn: sqlite3.Connection, call_id: str, needs: Needs) -> Call | None:
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

    def _flush(self) -> None:
        """Make the commits so far durable: fsync the WAL, outside the write lock.

        This keeps ``synchronous=FULL``'s promise (the transition is on disk before Graph hears 202) without
        its queue: FULL flushes while holding the write lock, so every worker waits for every flush; here the
        workers flush side by side, and one flush of the file carries every commit written before it. The WAL
        is opened by name each time, in case a checkpoint removed it and it was created again since.
        """
        if self.synchronous != "full":
            return
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed and removed: the commit is in the database file, which SQLite synced
        except OSError as exc:
            raise StoreUnavailable(f"cannot flush the SQLite store {self.path}: {exc}", reason=_os_reason(exc)) from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise StoreUnavailable(f"cannot flush the SQLite store {self.path}: {exc}", reason=_os_reason(exc)) from exc
        finally:
            os.close(fd)

    def _commit(
        self,
        conn: sqlite3.Connection,
        decision: Decision,
        loaded: Call | None,
        needs: Needs,
        call_id: str,
        now: str,
        lease: Lease,
    ) -> Decision:
        """Write a decision's call record, the rows it changed and its outbox rows (inside the caller's
        transaction); number its events."""
        if decision.call is not None:
            call = decision.call
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
                    codec.dumps(call.core_dict()),
                ),
            )
            self._write_rows(conn, call, rows_of(loaded or Call(id=call.id), call, needs))
        events = []
        for event in decision.events:
            if lease.needs_delivery(event):
                cursor = conn.execute(
                    "INSERT INTO outbox (call_id, event, owner, lease_until, created_at) VALUES (?, ?, ?, ?, ?)",
                    (call_id, event.encode(), lease.owner, lease.until, now),
                )
                event = replace(event, id=cursor.lastrowid)
            events.append(event)
        return replace(decision, events=tuple(events))

    def _write_rows(self, conn: sqlite3.Connection, call: Call, rows: Rows) -> None:
        call_id = call.id
        if rows.history:
            conn.executemany(
                "INSERT OR REPLACE INTO call_history (call_id, seq, step) VALUES (?, ?, ?)",
                [(call_id, seq, codec.dumps(step)) for seq, step in rows.history],
            )
            if call.history_total > self.history_limit:
                conn.execute(
                    "DELETE FROM call_history WHERE call_id = ? AND seq < ?",
                    (call_id, call.history_total - self.history_limit),
                )
        if rows.roster is not None:
            conn.executemany(
                "INSERT OR REPLACE INTO call_participants (call_id, position, doc) VALUES (?, ?, ?)",
                [(call_id, position, codec.dumps(entry)) for position, entry in rows.roster],
            )
            conn.execute(
                "DELETE FROM call_participants WHERE call_id = ? AND position >= ?", (call_id, rows.roster_length)
            )
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
                    (call_id, call_id, self.kept_per_call),
                )

    def count_calls(self, what: str) -> int:
        condition = "(state IS NULL OR state != 'terminated')"
        if what == "stale":
            condition += " AND stale_since IS NOT NULL"
        ((count,),) = self._read(f"SELECT COUNT(*) FROM calls WHERE {condition}")
        assert isinstance(count, int)
        return count

    def quiet_calls(self, seen_before: float, limit: int = 100) -> list[str]:
        rows = self._read(
            "SELECT id FROM calls WHERE stale_since IS NULL AND seen_at < ? "
            "AND (state IS NULL OR state != 'terminated') ORDER BY seen_at LIMIT ?",
            (iso(seen_before), limit),
        )
        return [str(call_id) for (call_id,) in rows]

    def keepalives_due(self, due_before: float, limit: int = 100) -> list[str]:
        rows = self._read(
            "SELECT id FROM calls WHERE keepalive_at < ? AND state NOT IN ('terminating', 'terminated') "
            "ORDER BY keepalive_at LIMIT ?",
            (iso(due_before), limit),
        )
        return [str(call_id) for (call_id,) in rows]

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: the write lock is held from the first read."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _write(self, statement: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        try:
            return self._connect().execute(statement, params)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def _read(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._connect().execute(query, params).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

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

    def list_calls(self, state: str | None = None, limit: int = 100, *, active: bool = False) -> list[Call]:
        conditions, params = [], []
        if state is not None:
            conditions.append("state = ?")
            params.append(state)
        if active:
            conditions.append("(state IS NULL OR state != 'terminated')")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._read(f"SELECT doc FROM calls{where} ORDER BY seen_at DESC, id DESC LIMIT ?", (*params, limit))
        return [self.stored(Call.from_dict(codec.loads(str(doc)))) for (doc,) in rows]

    def ping(self) -> None:
        """Read the calls table; after a use failed, check that what failed works again: the whole file after
        corruption, a write (taking the write lock) after a lock or a full disk."""
        if self._fault is None:
            self._read("SELECT 1 FROM calls LIMIT 1")
            return
        if self._fault.reason == "corrupt":
            result = self._read("PRAGMA quick_check(1)")
            if result != [("ok",)]:
                raise StoreUnavailable(f"the SQLite store {self.path} is corrupt: {result}", reason="corrupt")
        else:
            conn = self._connect()
            try:
                with self._transaction(conn):
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # a write of the same value
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
        self._fault = None

    def close(self) -> None:
        self.flush_completed()
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()


def _os_reason(exc: OSError) -> str:
    return "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "unavailable"


def _identity(path: Path) -> tuple[int, int] | None:
    """The device and inode the path names now (None when nothing is there)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


# SQLite's primary result codes (https://www.sqlite.org/rescode.html) of the faults a retry may outlive.
_BUSY, _LOCKED, _FULL, _CANTOPEN, _CORRUPT, _NOTADB = 5, 6, 13, 14, 11, 26
_REASONS = {_BUSY: "busy", _LOCKED: "busy", _FULL: "disk_full", _CANTOPEN: "unavailable"}


def _error_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return int(code) & 0xFF
    text = str(exc)
    if "malformed" in text:
        return _CORRUPT
    if "not a database" in text:
        return _NOTADB
    if "locked" in text:
        return _BUSY
    if "full" in text:
        return _FULL
    return None
