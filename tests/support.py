"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from webhook.model import Call
from webhook.schemas import load_notifications
from webhook.state import Event, decide

ROOT = Path(__file__).resolve().parent.parent
#: Microsoft's and a third party's payloads live beside the repository and are never copied into it.
PAYLOADS = Path(os.environ.get("COMMS_WEBHOOK_PAYLOADS", ROOT.parent / "shared" / "payloads"))
DOCS = PAYLOADS / "graph-docs"
CAPTURED = PAYLOADS / "captured" / "graph-calling-bots"
NO_PAYLOADS = f"the shared payloads are not at {PAYLOADS} (set COMMS_WEBHOOK_PAYLOADS to their folder)"


def docs_files() -> list[Path]:
    return sorted(DOCS.glob("*.json")) if DOCS.is_dir() else []


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def replay_pure(bodies: list[dict[str, Any]], start: Call | None = None) -> tuple[Call | None, list[Event]]:
    """Run bodies through the pure state machine only; return the last call touched and every event."""
    call, events = start, []
    for index, body in enumerate(bodies):
        for notification in load_notifications(body):
            decision = decide(call, notification, f"2026-01-01T00:00:{index:02d}.000Z")
            if decision.call is not None:
                call = decision.call
            events.extend(decision.events)
    return call, events


def history_states(call: dict[str, Any] | Call) -> list[str]:
    history = call.history if isinstance(call, Call) else call["history"]
    return [step["to"] for step in history]


def is_subsequence(items: list[str], of: list[str] | tuple[str, ...]) -> bool:
    remaining = iter(of)
    return all(any(item == candidate for candidate in remaining) for item in items)
