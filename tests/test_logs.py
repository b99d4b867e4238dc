"""Structured logs: one JSON object per record."""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from webhook.logs import JsonFormatter, configure


def _record(created: float, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("webhook.access", logging.INFO, __file__, 1, "POST %s", ("/api/calls",), None)
    record.created = created
    record.fields = fields
    return record


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_the_time_is_the_utc_iso_time_to_the_millisecond(created: float) -> None:
    line = json.loads(JsonFormatter().format(_record(created)))
    assert line["time"] == datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")


def test_a_line_carries_the_record_and_its_fields_writing_what_json_cannot_hold_as_text() -> None:
    formatter = JsonFormatter()
    odd = object()
    line = json.loads(formatter.format(_record(1764700870.25, status=202, callIds=["c1"], odd=odd, lone="\ud800")))
    assert line == {
        "time": "2025-12-02T18:41:10.250+00:00",
        "level": "info",
        "logger": "webhook.access",
        "message": "POST /api/calls",
        "status": 202,
        "callIds": ["c1"],
        "odd": str(odd),
        "lone": "\ud800",
    }


def test_lines_go_to_the_stderr_of_the_moment_not_to_the_one_of_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure("info", "json")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging.getLogger("webhook.test").warning("one")
    first.close()  # as pytest closes a test's captured stderr
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("webhook.test").warning("two")
    assert json.loads(second.getvalue())["message"] == "two"
