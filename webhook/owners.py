"""Who holds an outbox event: this process as an owner, and whether another owner still runs.

An owner is ``host:pid:start:token``. A pid names one process at a time but is reused after it exits (after a
restart, an old worker's pid is usually taken by a new worker, a thread or another program): the start time,
read from ``/proc``, tells the processes apart. Owners on other hosts are never judged here: their leases
expire instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

_HOST = socket.gethostname()
_TOKEN = uuid.uuid4().hex[:8]


def _boot_id() -> str:
    """This boot of the machine (Linux), so that start times of two boots are never compared."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    except OSError:
        return ""


_BOOT = _boot_id()


def _started(pid: int) -> str:
    """When process ``pid`` started (boot and clock ticks since boot, from /proc); "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{_BOOT}.{stat.rsplit(')', 1)[1].split()[19]}"  # field 22, starttime; the name may hold spaces


_OWNER: tuple[int, str] | None = None


def process_owner() -> str:
    """This process as an outbox owner; a fork gets its own (the pid changes)."""
    global _OWNER
    pid = os.getpid()
    if _OWNER is None or _OWNER[0] != pid:
        _OWNER = (pid, f"{_HOST}:{pid}:{_started(pid)}:{_TOKEN}")
    return _OWNER[1]


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` was a process on this host that no longer runs (its pid is free, or names a process
    that started at another time)."""
    host, pid_text, *rest = owner.split(":")
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner != process_owner()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    started = rest[0] if len(rest) == 2 else ""  # owners written before start times were recorded have none
    return bool(started) and _started(pid) not in ("", started)
