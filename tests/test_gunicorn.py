"""The receiver under a real gunicorn with several worker processes sharing one SQLite file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from webhook.simulate import delivery, make_calls, send_all

from .conftest import ADMIN_TOKEN
from .support import Gunicorn, history_states, is_subsequence

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_200_calls_from_16_threads_each_notification_twice_shuffled(counting_server: tuple[Gunicorn, Path]) -> None:
    server, count_file = counting_server
    calls = make_calls(200, seed=7)
    bodies = delivery(calls, copies=2, seed=7)

    statuses = send_all(server.url + "/api/calls", bodies, concurrency=16)

    assert Counter(statuses) == {202: len(bodies)}
    heard = [json.loads(line) for line in count_file.read_text().splitlines()]
    assert len({event["pid"] for event in heard}) > 1, "the load should have spread over several workers"
    transitions = [event for event in heard if event["signal"] == "call_state_changed"]
    heard_per_call = Counter((event["call"], event["sender"]) for event in transitions)
    expected_per_call: Counter[tuple[str, str]] = Counter()
    for scenario in calls:
        call = server.get_json(f"/api/calls/{scenario.call_id}", ADMIN)
        assert call["state"] == scenario.final_state, (scenario.name, call["history"])
        states = history_states(call)
        assert is_subsequence(states, scenario.states), (scenario.name, states)
        expected_per_call.update((scenario.call_id, state) for state in states)
        if scenario.final_state == "terminated":
            assert heard_per_call[(scenario.call_id, "terminated")] == 1
    # Every transition in the histories was signalled exactly once, across all four processes.
    assert heard_per_call == expected_per_call
