"""Time as comms-webhook keeps it: ISO 8601 text in UTC to the millisecond, with ``Z``. Pure.

Every time a call carries (``updatedAt``, ``seenAt``, a step's ``at``...) is written by :func:`utc_now` or
:func:`iso`, so the stores can compare and sort them as text; :func:`epoch` reads them back (and any ISO 8601).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

#: The second :func:`utc_now` last wrote, and its text up to the milliseconds.
_last_second: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """The current time: ``2026-12-02T19:01:10.225Z`` (what ``datetime.now(timezone.utc).isoformat`` writes to
    the millisecond; the text of the second is written once per second, as every notification asks the time)."""
    global _last_second
    second, millisecond = divmod(time.time_ns() // 1_000_000, 1000)
    last = _last_second
    if last[0] != second:
        last = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{last[1]}.{millisecond:03d}Z"


def iso(epoch: float) -> str:
    """An epoch time in the same form as :func:`utc_now` (comparable with it as text)."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(timestamp: str | None) -> float | None:
    """The epoch seconds of an ISO time (as :func:`iso` writes, or any ISO 8601); None when it is not one."""
    if not timestamp:
        return None
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
