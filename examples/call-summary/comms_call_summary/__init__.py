"""One JSON line per ended call: duration, participants, end reason explained."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from webhook import on
from webhook.roster import is_bot

_path: Path | None = None
_lock = threading.Lock()
_seen: dict[str, set[str]] = {}  # call id -> participants (not the bot) seen in any roster


def setup(app: Any) -> None:
    """Read WEBHOOK_CALL_SUMMARY_PATH (or CALL_SUMMARY_PATH in create_app's mapping)."""
    global _path
    configured = app.config.get("CALL_SUMMARY_PATH")
    _path = Path(configured) if configured else Path(app.instance_path) / "call-summaries.jsonl"
    _path.parent.mkdir(parents=True, exist_ok=True)


@on.joined
def remember(call: Any, participants: list[dict[str, Any]]) -> None:
    people = _seen.setdefault(call.id, set())
    people.update(str(p.get("id") or p.get("info")) for p in participants if not p.get("isBot"))


def _seconds_between(start: str, end: str) -> float | None:
    try:
        started = datetime.fromisoformat(start.replace("Z", "+00:00"))
        ended = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((ended - started).total_seconds(), 3)


@on.call_state("terminated")
def summarize(call: Any, end_reason: str | None) -> None:
    """Idempotent in effect: a call redelivered after a crash writes the same line again, with the same id."""
    ended_at = call.history[-1]["at"] if call.history else call.updated_at
    # Everyone who joined at some point; a call with no roster notifications counts its last roster.
    participants = _seen.pop(call.id, set()) or {str(p.get("id")) for p in call.participants if not is_bot(p)}
    summary = {
        "callId": call.id,
        "direction": call.direction,
        "startedAt": call.created_at,
        "endedAt": ended_at,
        "durationSeconds": _seconds_between(call.created_at, ended_at),
        "participants": len(participants),
        "states": [step["to"] for step in call.history],
        "endReason": end_reason,
        "resultInfo": (call.end or {}).get("resultInfo"),
    }
    path = _path or Path(os.environ.get("WEBHOOK_CALL_SUMMARY_PATH", "call-summaries.jsonl"))
    with _lock, path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(summary) + "\n")
