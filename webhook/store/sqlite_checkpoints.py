"""Checkpoints off the request path.

In WAL mode a commit appends its pages to ``<store>-wal``; a *checkpoint* copies them back into the database
file, and flushes both files to disk. SQLite's default runs one inside the commit that takes the WAL past 1000
pages: about every hundredth notification waited for megabytes of writes and two disk flushes, while holding
the writers' queue, so every other writer waited too. Here a background thread does that work instead. Of the
processes using one store on a machine, the one whose thread holds the lock of ``<store>-checkpointer`` runs a
passive checkpoint (one that never blocks a writer or a reader) every :data:`CHECKPOINT_SECONDS`. When that
process stops, the next thread to try the lock takes over.

What a commit promises does not change: a checkpoint only moves pages already committed to the WAL. A
checkpoint also flushes the WAL to disk before it copies, so with ``SQLITE_SYNCHRONOUS=normal`` a power cut
loses at most the commits made since the last round, a fraction of a second, where SQLite's default could
leave the last 1000 pages in the OS cache for as long as traffic was low.

A commit still checkpoints itself once the WAL passes :data:`WAL_LIMIT_PAGES`. That only happens when no thread
keeps up: a lock file that cannot be opened makes every process's thread checkpoint, which is safe, only
redundant.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import weakref
from contextlib import suppress
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger("webhook.store")

#: How often the elected thread checkpoints (seconds): a busy receiver writes a few thousand pages a second.
CHECKPOINT_SECONDS = 0.1
#: The WAL size (pages) past which a commit checkpoints itself, as SQLite does by default at 1000 (about 40 MB
#: of WAL at the default page size).
WAL_LIMIT_PAGES = 10_000


#: The lock files this process's checkpointer threads hold open. A forked child closes its copies: a lock belongs
#: to the open file, which the child shares, so a child would otherwise hold the lock for as long as it lives,
#: and no other process could take over once the parent stops.
_HELD_LOCKS: set[int] = set()


def _close_inherited_locks() -> None:
    for lock in _HELD_LOCKS:
        with suppress(OSError):
            os.close(lock)
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


def file_identity(path: Path) -> tuple[int, int] | None:
    """The device and inode the path names now (None when nothing is there)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


class Checkpointer:
    """The background checkpoints of one SQLite store: one thread per process that uses it, started by
    :meth:`start` (cheap to call again: once per process) and ended by :meth:`stop` or when the checkpointer
    is gone. Of those threads, the one holding the lock of ``<store>-checkpointer`` checkpoints."""

    def __init__(self, path: Path, interval: float = CHECKPOINT_SECONDS) -> None:
        self.path, self.interval = path, interval
        self._started_in: int | None = None
        self._stopped = threading.Event()
        self._start_lock = threading.Lock()
        self._failing: str | None = None  # the last round's error, logged once until a round succeeds
        #: Checkpoints this process ran.
        self.rounds = 0

    def start(self) -> None:
        """Start this process's thread, unless it runs already."""
        if self._started_in == os.getpid():
            return
        with self._start_lock:
            if self._started_in == os.getpid():
                return
            self._started_in = os.getpid()
            self._stopped = threading.Event()
            threading.Thread(
                target=_run,
                args=(weakref.ref(self), self._stopped, self.interval, f"{self.path}-checkpointer"),
                name="webhook-sqlite-checkpoints",
                daemon=True,
            ).start()

    def stop(self) -> None:
        """End this process's thread (its lock goes to another process's); :meth:`start` starts another."""
        with self._start_lock:
            self._stopped.set()
            self._started_in = None

    def checkpoint(self, conn: _Connection | None) -> _Connection | None:
        """One passive checkpoint through ``conn``, opened first (or again, when the path names another file
        now) and given back for the next round; None when there is no store to checkpoint."""
        identity = file_identity(self.path)
        if conn is not None and identity != conn.identity:
            conn.close()
            conn = None
        if identity is None:
            return None
        try:
            if conn is None:
                # mode=rw: a store deleted meanwhile is not created again empty by its checkpointer.
                conn = sqlite3.connect(
                    f"file:{quote(str(self.path))}?mode=rw", uri=True, isolation_level=None, factory=_Connection
                )
                conn.identity = identity
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            if self._failing != str(exc):
                logger.warning("cannot checkpoint the SQLite store %s yet (retrying): %s", self.path, exc)
            self._failing = str(exc)
            return conn
        if self._failing is not None:
            logger.info("the SQLite store %s is checkpointed again", self.path)
            self._failing = None
        self.rounds += 1
        return conn


class _Connection(sqlite3.Connection):
    identity: tuple[int, int] | None = None  # the file it opened


def _run(reference: weakref.ref[Checkpointer], stopped: threading.Event, interval: float, lock_path: str) -> None:
    """The thread: try the lock each round until held, then checkpoint each round until stopped."""
    try:
        lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        _HELD_LOCKS.add(lock)
    except OSError as exc:
        logger.debug("every process checkpoints its store: cannot open %s: %s", lock_path, exc)
        lock = -1
    conn: _Connection | None = None
    elected = lock < 0
    try:
        while not stopped.wait(interval):
            checkpointer = reference()
            if checkpointer is None:
                return
            if not elected:
                elected = _try_lock(lock)
            if elected:
                conn = checkpointer.checkpoint(conn)
            del checkpointer  # held only for the round: a store that is gone ends its thread
    finally:
        if conn is not None:
            conn.close()
        if lock >= 0:
            _HELD_LOCKS.discard(lock)
            os.close(lock)  # and with it the lock: another process's thread takes over


def _try_lock(lock: int) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # no locks on this file system: checkpoint anyway (redundant, never unsafe)
        return True
