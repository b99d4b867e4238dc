"""The files of one process's journal: the folder's lock file and the current file of each kind, kept open
between appends and checked against their names (a file deleted or replaced under a running receiver is
noticed, not written into), and the append of one whole line.
"""

from __future__ import annotations

import fcntl
import logging
import os
import weakref
from contextlib import suppress
from pathlib import Path

logger = logging.getLogger("webhook.journal")


def append_line(fd: int, line: bytes, *, fsync: bool, start: int) -> None:
    """Append the whole line or nothing to the file that is ``start`` bytes long: a full disk (or a file-size
    limit) makes ``write`` write part of it, and a torn line would be glued to the next record. On failure the
    file is cut back to ``start`` (the folder lock is held, so nobody appended since), and the error is raised."""
    try:
        rest = memoryview(line)
        while rest:
            rest = rest[os.write(fd, rest) :]
        if fsync:
            os.fsync(fd)
    except OSError:
        try:
            os.ftruncate(fd, start)
        except OSError as exc:
            logger.error("could not cut a partly written journal line off %d bytes in: %s", start, exc)
        raise


class OpenFiles:
    """One process's lock file and current file of one kind, kept open between appends.

    The lock file is locked (``flock``, exclusive) for each append, between processes; its content is the name of
    the file being appended to. Each file's device and inode are kept from when it was opened: a path still
    names the open file when a ``stat`` of the path gives them (an open file keeps its inode), one system call
    per check instead of two.
    """

    def __init__(self, lock_path: Path) -> None:
        self.pid = os.getpid()
        self.lock_path = lock_path
        self.lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o640)
        self.lock_identity = _identity(os.fstat(self.lock_fd))
        self.fd, self.name, self.path, self.identity = -1, "", "", (-1, -1)
        self._closer = weakref.finalize(self, _close_all, [self.lock_fd])

    def _fds(self) -> list[int]:
        return [fd for fd in (self.fd, self.lock_fd) if fd >= 0]

    def holds_lock_file(self) -> bool:
        """Whether the lock file open here is still the one its name gives."""
        return _named(self.lock_path, self.lock_identity) is not None

    def current(self) -> os.stat_result | None:
        """The status of the file open for appending while its path still names it; None when nothing is open, or
        that file was deleted, moved away or replaced since it was opened."""
        return _named(self.path, self.identity) if self.fd >= 0 else None

    def locked(self) -> OpenFiles:
        """``with files.locked():`` holds the lock file's lock for one append (these files are their own context
        manager: a generator's would cost as much as a system call, on every request)."""
        return self

    def __enter__(self) -> None:
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)

    def __exit__(self, *exc_info: object) -> None:
        fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def read_name(self) -> str:
        return os.pread(self.lock_fd, 256, 0).decode(errors="replace").strip()

    def write_name(self, name: str) -> None:
        os.ftruncate(self.lock_fd, 0)
        os.pwrite(self.lock_fd, name.encode(), 0)

    def open(self, path: Path) -> os.stat_result:
        """Open ``path`` for appending (closing the file open before); its status now."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        if self.fd >= 0:
            os.close(self.fd)
        opened = os.fstat(fd)
        self.fd, self.name, self.path, self.identity = fd, path.name, str(path), _identity(opened)
        self._closer.detach()
        self._closer = weakref.finalize(self, _close_all, self._fds())
        return opened

    def close(self) -> None:
        self._closer()
        self.fd = self.lock_fd = -1


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


def _named(path: str | Path, identity: tuple[int, int]) -> os.stat_result | None:
    """The status of what ``path`` names when it is the file of ``identity``, else None."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return None
    return named if _identity(named) == identity else None


def _close_all(fds: list[int]) -> None:
    """Close a forgotten journal's files (run once: on close, or when its object is collected)."""
    for fd in fds:
        with suppress(OSError):
            os.close(fd)
