"""The receiver under a real gunicorn with several worker processes sharing one SQLite file."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook.simulate import delivery, make_calls, send_all

from .conftest import ADMIN_TOKEN
from .support import Gunicorn, history_states, is_subsequence

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def counting_server(tmp_path: Path) -> Iterator[tuple[Gunicorn, Path]]:
    count_file = tmp_path / "events.jsonl"
    env = {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": f"sqlite:///{tmp_path / 'calls.sqlite3'}",
        "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
        "COUNT_FILE": str(count_file),
    }
    server = Gunicorn("tests.apps.counting:create_app()", workers=4, env=env, log=tmp_path / "gunicorn.log")
    try:
        server.wait_ready("/api/calls?limit=1", ADMIN)
        yield server, count_file
    finally:
        server.stop()


def test_200_calls_from_16_threads_each_notification_twice_shuffled(counting_server: tuple[Gunicorn, Path]) -> None:
    server, count_file = counting_server
    calls = make_calls(200, seed=7)
    bodies = delivery(calls, copies=2, seed=7)

    statuses = send_all(server.url + "/api/calls", bodies, concurrency=16)

    assert Counter(statuses) == {202: len(bodies)}
    heard = [json.loads(line) for line in count_file.read_text().splitlines()]
    assert len({event["pid"] for event in heard}) > 1, "the load should have spread over several workers"
    heard_per_call = Counter((event["call"], event["to"]) for event in heard)
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
