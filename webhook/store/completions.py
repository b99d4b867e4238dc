"""Delivered events leave the outbox: their rows wait in this process, to be deleted by its next commit (in
that commit's own transaction) or within a second when none comes, and at the process's normal exit."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable

from ..errors import StoreError

logger = logging.getLogger("webhook.store")

#: The most delivered rows one statement removes (SQLite caps a statement's parameters; a backlog left by a store
#: that failed for a while leaves in several commits).
COMPLETE_AT_ONCE = 500
_QUEUES: weakref.WeakSet[Completions] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """A process that ends normally (a CLI command, a script, a worker's exit) leaves no delivered row behind."""
    for queue in list(_QUEUES):
        if queue.pid == os.getpid():
            queue.flush()


class Completions:
    """Outbox rows of events delivered in this process, waiting to be removed: taken by the next commit, which
    deletes them in its own transaction, or removed by ``remove`` within ``within`` seconds, whichever is first.
    Thread-safe; each id is taken once."""

    def __init__(self, remove: Callable[[list[int]], None], within: float) -> None:
        self.pid = os.getpid()
        self._remove, self._within = remove, within
        self._ids: list[int] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        _QUEUES.add(self)

    def add(self, event_ids: list[int], *, first: bool = False) -> None:
        """Queue ids (``first``: ahead of the others, for ids given back by a commit that did not happen)."""
        if not event_ids:
            return
        with self._lock:
            if first:
                self._ids[:0] = event_ids
            else:
                self._ids.extend(event_ids)
            if self._timer is None:
                self._timer = threading.Timer(self._within, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def take(self, limit: int = COMPLETE_AT_ONCE) -> list[int]:
        """At most ``limit`` ids for a commit to delete (the rest wait for the next), oldest first;
        ``add(ids, first=True)`` gives them back if it does not commit."""
        with self._lock:
            taken, self._ids = self._ids[:limit], self._ids[limit:]
            return taken

    def flush(self) -> None:
        """Remove every queued row now, in a write of its own; kept queued, for later, if the store fails."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()  # a no-op when the timer itself is what runs this
                self._timer = None
        while taken := self.take():
            try:
                self._remove(taken)
            except StoreError as exc:  # still leased to this process: removed later, or delivered again if it dies
                logger.warning(
                    "could not remove %d delivered event(s) from the outbox yet: %s", len(taken), exc.message
                )
                self.add(taken, first=True)
                return
