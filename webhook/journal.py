"""The journal: every accepted callback as a JSON line, for replays in tests, from the CLI, after a failure.

One line per request: the time received, Graph's correlation headers, the verified tenant and the raw body,
never the Authorization header or the token. Files are ``journal-YYYYMMDD-NNN.jsonl`` in ``JOURNAL_DIR``,
rotated by day (UTC) and by size, and deleted after ``JOURNAL_RETENTION_DAYS``. Rejected requests go to
``rejected-YYYYMMDD-NNN.jsonl`` with the reason, when ``JOURNAL_REJECTED`` is on.

Several gunicorn workers append at once: each append takes an exclusive ``flock`` on the folder's lock file, so
lines never interleave and all processes agree on the current file; each process keeps its files open between
appends (an append is a lock, a read of the current name, two stats and a write). With ``fsync`` each line is on
disk before the 202 is sent; without it (the default) the operating system writes it shortly after, and a power cut can
lose the last lines (never the calls: the store is the system of record).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from . import codec
from .errors import ConfigError
from .journal_files import OpenFiles, append_line
from .settings import default

logger = logging.getLogger("webhook.journal")

#: Graph's correlation headers, kept with each request (support and correlation use them).
CORRELATION_HEADERS = (
    "Scenario-Id",
    "Client-Request-Id",
    "Request-Id",
    "X-Microsoft-Skype-Chain-ID",
    "X-Microsoft-Skype-Message-ID",
    "MS-Teams-Region",
    "User-Agent",
)
_NAME = re.compile(r"(?P<kind>journal|rejected)-(?P<day>\d{8})-(?P<index>\d{3,})\.jsonl")


#: The longest header value kept (in characters): Graph's are ids of ~40; anyone may send megabytes, and an
#: unauthenticated request must not be able to write that much into the logs and the rejected journal.
MAX_HEADER_CHARS = 256


def correlation_headers(headers: Any) -> dict[str, str]:
    """The correlation headers present in ``headers`` (any mapping with ``get``), each cut to
    :data:`MAX_HEADER_CHARS` (a cut value ends with ``...``); never Authorization."""
    return _present(headers.get, CORRELATION_HEADERS)


#: Where a WSGI server puts each correlation header in the environ (as Werkzeug's headers read it).
_ENVIRON_KEYS = tuple("HTTP_" + name.upper().replace("-", "_") for name in CORRELATION_HEADERS)


def environ_correlation_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """:func:`correlation_headers` of a WSGI request, read from its ``environ`` directly: a lookup of Werkzeug's
    headers by name walks every header, seven times per request here."""
    return _present(environ.get, _ENVIRON_KEYS)


def _present(get: Callable[[str], Any], keys: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name, key in zip(CORRELATION_HEADERS, keys, strict=True):
        value = get(key)
        if value:
            found[name] = _capped(str(value))
    return found


def _capped(value: str) -> str:
    return value if len(value) <= MAX_HEADER_CHARS else value[: MAX_HEADER_CHARS - 3] + "..."


class Journal:
    """Appends records to rotated JSON-lines files in one folder, safely from several processes."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        max_bytes: int = default("JOURNAL_MAX_BYTES"),
        retention_days: int = default("JOURNAL_RETENTION_DAYS"),
        fsync: bool = default("JOURNAL_FSYNC"),
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"WEBHOOK_JOURNAL_DIR: cannot create {self.folder}: {exc}") from exc
        self.max_bytes = max_bytes
        self.retention_days = retention_days
        self.fsync = fsync
        self.clock = clock
        self._thread_lock = threading.Lock()
        self._handles: dict[str, OpenFiles] = {}
        self._pruned_day: str | None = None

    def append(self, record: Mapping[str, Any], *, kind: str = "journal") -> None:
        """Append one record as one line. Raises ``OSError`` when the folder cannot be written."""
        line = (codec.dumps(record) + "\n").encode()
        now = self.clock()
        day = f"{now.year:04d}{now.month:02d}{now.day:02d}"  # strftime's %Y%m%d, at a third of its cost
        with self._thread_lock:
            handle = self._handle(kind)
            with handle.locked():
                fd, size = self._current_fd(handle, kind, day, len(line))
                append_line(fd, line, fsync=self.fsync, start=size)
            if self._pruned_day != day:
                self._pruned_day = day
                self._prune(day)

    def _handle(self, kind: str) -> OpenFiles:
        """This process's open files of one kind (a forked child opens its own, and a lock file deleted or
        replaced is opened again: every process must lock the same file)."""
        handle = self._handles.get(kind)
        if handle is None or handle.pid != os.getpid() or not handle.holds_lock_file():
            if handle is not None and handle.pid == os.getpid():
                handle.close()
            handle = self._handles[kind] = OpenFiles(self.folder / f".{kind}.lock")
        return handle

    def _current_fd(self, handle: OpenFiles, kind: str, day: str, incoming: int) -> tuple[int, int]:
        """The open file to append to, under the folder lock, and its size. The lock file holds the current file's
        name, so that every process agrees on it without listing the folder at each append; the file stays open
        between appends, and is opened again when another process rotated, or when it was deleted or replaced."""
        name = handle.read_name()
        opened = handle.current() if name == handle.name and name.startswith(f"{kind}-{day}-") else None
        if opened is None or (opened.st_size > 0 and opened.st_size + incoming > self.max_bytes):
            opened = handle.open(self._current_file(handle, name, kind, day, incoming))
        return handle.fd, opened.st_size

    def _current_file(self, handle: OpenFiles, name: str, kind: str, day: str, incoming: int) -> Path:
        """The file to append to now, given the lock file's ``name``; written to the lock file when it changes. The
        folder is listed only here."""
        path = self.folder / name if name else None
        if path is None or not name.startswith(f"{kind}-{day}-") or self._full(path, incoming):
            indexes = sorted(
                int(match["index"])
                for match in (_NAME.fullmatch(p.name) for p in self.folder.iterdir())
                if match and match["kind"] == kind and match["day"] == day
            )
            index = indexes[-1] if indexes else 1
            path = self.folder / f"{kind}-{day}-{index:03d}.jsonl"
            if self._full(path, incoming):
                path = self.folder / f"{kind}-{day}-{index + 1:03d}.jsonl"
            handle.write_name(path.name)
        return path

    def close(self) -> None:
        """Close the files this process holds open (appending opens them again)."""
        with self._thread_lock:
            for handle in self._handles.values():
                if handle.pid == os.getpid():
                    handle.close()
            self._handles.clear()

    def _full(self, path: Path, incoming: int) -> bool:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        return size > 0 and size + incoming > self.max_bytes

    def _prune(self, today: str) -> None:
        oldest = (datetime.strptime(today, "%Y%m%d") - timedelta(days=self.retention_days)).strftime("%Y%m%d")
        for path in self.folder.iterdir():
            match = _NAME.fullmatch(path.name)
            if match and match["day"] < oldest:
                try:
                    path.unlink()
                except OSError as exc:
                    logger.warning("could not delete old journal file %s: %s", path, exc)

    def files(self, kind: str = "journal") -> list[Path]:
        """The journal files, oldest first."""
        named = [(m["day"], int(m["index"]), p) for p in self.folder.iterdir() if (m := _NAME.fullmatch(p.name))]
        return [path for day, index, path in sorted(named) if path.name.startswith(kind + "-")]


class BadLine(ValueError):
    """A line of a journal file that is not a journal record; ``source`` is ``path:line``."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source} is not a journal record: {reason}")
        self.source = source
        self.reason = reason


def read_records(path: Path, *, on_bad_line: Callable[[BadLine], None] | None = None) -> Iterator[dict[str, Any]]:
    """The records of one journal file, in order, each with ``_source`` (``path:line``).

    A line that is not a record (torn by a crash or a full disk, not a JSON object, ``body`` or ``headers`` of
    the wrong type) is passed to ``on_bad_line`` and skipped; without ``on_bad_line`` it raises :class:`BadLine`.
    """
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            source = f"{path}:{number}"
            try:
                record = _record(raw)
            except BadLine as exc:
                bad = BadLine(source, exc.reason)
                if on_bad_line is None:
                    raise bad from None
                on_bad_line(bad)
                continue
            record.setdefault("_source", source)
            yield record


def _record(raw: bytes) -> dict[str, Any]:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadLine("", "not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadLine("", f"{exc.msg} at column {exc.colno}") from None
    if not isinstance(record, dict):
        raise BadLine("", f"a JSON {type(record).__name__}, not an object")
    for name, kind in (("body", str), ("receivedAt", str), ("headers", dict)):
        if name in record and record[name] is not None and not isinstance(record[name], kind):
            raise BadLine("", f"{name} is not a {'string' if kind is str else 'JSON object'}")
    headers = record.get("headers")
    if isinstance(headers, dict) and not all(isinstance(value, str) for value in headers.values()):
        raise BadLine("", "a header value is not a string")
    return record
