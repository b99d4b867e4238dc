"""Time as comms-webhook keeps it: ISO 8601 text in UTC to the millisecond, with ``Z``. Pure.

Every time a call carries (``updatedAt``, ``seenAt``, a step's ``at``...) is written by :func:`utc_now` or
:func:`iso`, so the stores can compare and sort them as text; :func:`epoch` reads them back (and any ISO 8601).
"""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    """The current time: ``2026-12-02T19:01:10.225Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
