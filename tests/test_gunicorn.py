"""The receiver under a real gunicorn with several worker processes sharing one SQLite file."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from webhook.builders import call_notification, envelope, incoming_call, new_id, participant, roster_notification
from webhook.scenarios import make_calls
from webhook.simulate import delivery, send_all

from .conftest import ADMIN_TOKEN
from .support import SHIPPED_GUNICORN, Gunicorn, history_states, is_subsequence

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


def test_a_1000_participant_roster_and_a_body_at_the_cap_are_answered_well_within_the_timeout(tmp_path: Path) -> None:
    env = {"WEBHOOK_AUTH": "disabled", "WEBHOOK_DATA_DIR": str(tmp_path / "data"), "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN}
    server = Gunicorn(
        "webhook:create_app()", workers=None, threads=None, env=env, log=tmp_path / "g.log", config=SHIPPED_GUNICORN
    )
    try:
        server.wait_ready("/readyz", {})
        meeting = new_id()
        people = [participant(new_id(), f"person {index}") for index in range(1000)]
        moves = [call_notification(meeting, state) for state in ["established", "hold"] * 100]  # 200: the cap
        for body in (
            envelope(incoming_call(meeting)),
            envelope(roster_notification(meeting, people)),
            envelope(roster_notification(meeting, [{**people[0], "isMuted": True}, *people[1:]])),
            envelope(*moves),
        ):
            started = time.monotonic()
            assert send_all(server.url + "/api/calls", [body], concurrency=1) == [202]
            assert time.monotonic() - started < 10  # gunicorn's shipped timeout is 30 s
        call = server.get_json(f"/api/calls/{meeting}", ADMIN)
        assert len(call["participants"]) == 1000 and call["participants"][0]["isMuted"] is True
        assert call["historyTotal"] == 201
    finally:
        server.stop()
