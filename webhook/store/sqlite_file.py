"""One SQLite file as the store uses it: a connection per thread and per process (fork-safe), opened in WAL
mode and checked, before each use, to still be the file its path names; its schema prepared once per process;
its writers queued on this machine; its errors translated into ours, with the reason a retry may outlive
(locked, disk full, corrupt, replaced).

The writers' queue: SQLite makes a writer that finds the write lock taken sleep (1 ms, then 2, 5, 10...) before
it tries again, however soon the lock is free; with several gunicorn workers that happened more than once per
notification, and the sleeps cost more than the writes. So each write first takes an exclusive ``flock`` on
``<store>-lock``, trying again every 0.1 ms, and reaches SQLite's lock once it is free. It only orders our own
writers: SQLite's lock still keeps every write apart (other programs do not queue, and wait as SQLite makes
them), and a lock file that cannot be opened, or was deleted, only means waiting as before.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
from contextlib import suppress
from pathlib import Path

from ..errors import ConfigError, StoreError, StoreUnavailable
from .sqlite_checkpoints import WAL_LIMIT_PAGES, Checkpointer, file_identity
from .sqlite_rows import write_rows
from .sqlite_schema import SCHEMA_VERSION, migrate

logger = logging.getLogger("webhook.store")


class SQLiteFile:
    """The file under a :class:`~webhook.store.sqlite.SQLiteStore`: connections, faults, schema, transactions."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float, synchronous: str) -> None:
        self.path = Path(path)
        self.timeout = timeout
        if synchronous not in ("full", "normal"):
            raise ConfigError(f"WEBHOOK_SQLITE_SYNCHRONOUS must be full or normal, got {synchronous!r}")
        self.synchronous = synchronous
        self._wal = Path(f"{self.path}-wal")
        self._local = threading.local()
        self._schema_ready_in: tuple[int, int] | None = None  # the file whose schema this process checked
        self._schema_lock = threading.Lock()
        self._fault: StoreUnavailable | None = None  # what made this process's last use fail, until one succeeds
        self.checkpointer = Checkpointer(self.path)

    def _connect(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and getattr(local, "pid", None) == os.getpid():
            if file_identity(self.path) == local.identity:
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
        if file_identity(self.path) is None and self._wal.exists():
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
            # Checkpoints run in the background (see sqlite_checkpoints); a commit runs one only past this.
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_LIMIT_PAGES}")
            identity = file_identity(self.path)
            self._prepare_schema(conn, identity)
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc) from exc
        except BaseException:
            conn.close()
            raise
        local.conn, local.pid, local.identity = conn, os.getpid(), identity
        local.queue = self._open_queue()
        self.checkpointer.start()
        return conn

    def _open_queue(self) -> int:
        """This connection's own descriptor of the writers' lock file (a lock belongs to an open file: each
        thread opens its own to queue behind the others), or -1 when it cannot be opened."""
        try:
            return os.open(f"{self.path}-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            logger.debug("writers of %s wait as SQLite makes them: cannot open its lock file: %s", self.path, exc)
            return -1

    def _forget(self, conn: sqlite3.Connection) -> None:
        self._local.conn = None
        with suppress(sqlite3.Error):
            conn.close()
        self._close_queue()

    def _close_queue(self) -> None:
        queue = getattr(self._local, "queue", -1)
        self._local.queue = -1
        if queue >= 0:
            with suppress(OSError):
                os.close(queue)

    def _take_turn(self) -> int:
        """Take the writers' lock for one write (see the module's docstring): the descriptor to give back to
        :meth:`_end_turn` (-1 when there is no lock file). :class:`StoreUnavailable` with reason ``busy`` when
        another writer held it for the store's timeout, as SQLite's lock would say."""
        queue: int = getattr(self._local, "queue", -1)
        if queue >= 0 and not _take(queue, self.timeout):
            self._fault = StoreUnavailable(
                f"the SQLite store {self.path} is unavailable: another writer held it for {self.timeout:g} s",
                reason="busy",
            )
            raise self._fault
        return queue

    @staticmethod
    def _end_turn(queue: int) -> None:
        if queue >= 0:
            with suppress(OSError):  # a lock the system refused to take (see _take) is not there to release
                fcntl.flock(queue, fcntl.LOCK_UN)

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
                    migrate(conn, write_rows)
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

    def _transaction(self, conn: sqlite3.Connection) -> _Transaction:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an error), in the writers' queue: the write lock
        is held from the first read."""
        return _Transaction(self, conn)

    def _write(self, statement: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        try:
            conn = self._connect()
            queue = self._take_turn()
            try:
                return conn.execute(statement, params)
            finally:
                self._end_turn(queue)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def _read(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._connect().execute(query, params).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

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


class _Transaction:
    """What :meth:`SQLiteFile._transaction` returns: a class, where a generator's context manager cost more
    (0.85 us) than the writers' lock it took, on every notification."""

    __slots__ = ("conn", "file", "queue")

    def __init__(self, file: SQLiteFile, conn: sqlite3.Connection) -> None:
        self.file, self.conn, self.queue = file, conn, -1

    def __enter__(self) -> None:
        self.queue = self.file._take_turn()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            SQLiteFile._end_turn(self.queue)
            raise

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        conn = self.conn
        try:
            if kind is None:
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            SQLiteFile._end_turn(self.queue)


#: How long a writer waits before it tries the writers' lock again: a write holds it for about 0.1 ms.
QUEUE_PAUSE_SECONDS = 0.0001


def _take(queue: int, timeout: float) -> bool:
    """Lock ``queue`` (an open lock file), trying every :data:`QUEUE_PAUSE_SECONDS` for ``timeout`` seconds;
    whether it was taken. A lock the system refuses (no locks on this file system) counts as taken: the queue
    only spares SQLite's sleeps."""
    deadline = None
    while True:
        try:
            fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            now = time.monotonic()
            if deadline is None:
                deadline = now + timeout
            elif now >= deadline:
                return False
            time.sleep(QUEUE_PAUSE_SECONDS)
        except OSError:
            return True


def _os_reason(exc: OSError) -> str:
    return "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "unavailable"


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
