"""Call events a bot waits for, from the captured calls replayed through the real endpoint."""

from __future__ import annotations

import copy
import json
import random
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from webhook import create_app
from webhook.builders import envelope
from webhook.simulate import send_all

from .conftest import Recorder
from .support import DOCS, Gunicorn, captured, load_json, replay_pure

needs_captured = pytest.mark.payloads
P2P = "6f1f5c00-8c1b-47f1-be9d-660c501041a9"
GROUP = "631f6000-766a-4c6f-9da3-8755ebe44d19"


def simple_test() -> list[dict[str, Any]]:
    return captured("P2P/SimpleTest")


def counts(recorder: Recorder) -> Counter[tuple[str, Any]]:
    return Counter((name, sender) for name, sender, _ in recorder.sent if name != "notification_received")


@needs_captured
def test_peer_p2p_flow_in_order(poster: Any, recorder: Recorder, client: Any, admin: dict[str, str]) -> None:
    bodies = simple_test()
    for index, body in enumerate(bodies):
        poster(body)
        if index == 1:  # the plain "established": media is not active yet
            assert recorder.count("call_media_active") == 0
    assert counts(recorder) == {
        ("call_state_changed", "establishing"): 1,
        ("call_state_changed", "established"): 1,
        ("call_updated", P2P): 1,  # established again, now with mediaState
        ("call_media_active", P2P): 1,
        ("tone_received", "tone1"): 1,
        ("operation_completed", "playPrompt"): 1,
        ("call_state_changed", "terminated"): 1,
    }
    (operation,) = [kw for name, _, kw in recorder.sent if name == "operation_completed"]
    assert operation["succeeded"] is True
    assert operation["client_context"] == "299adb91-c8b5-47d8-9eec-003a7179aff3"
    (tone,) = [kw for name, _, kw in recorder.sent if name == "tone_received"]
    assert tone["sequence_id"] == 6
    (ended,) = [kw for name, sender, kw in recorder.sent if sender == "terminated"]
    assert ended["end_reason"] == "The conversation ended."
    assert client.get("/api/calls?active=true", headers=admin).get_json()["count"] == 0


@needs_captured
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_peer_p2p_flow_events_stay_exactly_once_when_duplicated_and_shuffled(data: st.DataObject) -> None:
    bodies = data.draw(st.permutations(simple_test() * 2))
    call, events = replay_pure(bodies)
    assert call is not None and call.state == "terminated"
    heard = Counter((e.name, e.sender) for e in events)
    for event in [
        ("call_state_changed", "terminated"),
        ("tone_received", "tone1"),
        ("operation_completed", "playPrompt"),
    ]:
        assert heard[event] == 1, (event, heard)
    # Steps that arrived after the end are stale, but no event fires twice. (call_updated may: the two
    # established bodies each bring fields the other lacks, whichever comes second.)
    assert all(count == 1 for (name, _), count in heard.items() if name != "call_updated"), heard
    assert heard[("call_media_active", P2P)] <= 1


@needs_captured
@pytest.mark.parametrize("seed", range(8))
def test_peer_p2p_flow_duplicated_and_shuffled_through_the_endpoint(
    any_store_settings: dict[str, str], recorder: Recorder, seed: int
) -> None:
    bodies = simple_test() * 2
    random.Random(seed).shuffle(bodies)
    client = create_app({"AUTH": "disabled", **any_store_settings}).test_client()
    for body in bodies:
        assert client.post("/api/calls", json=body).status_code == 202
    heard = counts(recorder)
    assert heard[("call_state_changed", "terminated")] == 1
    assert heard[("tone_received", "tone1")] == 1
    assert heard[("operation_completed", "playPrompt")] == 1
    assert all(count == 1 for (name, _), count in heard.items() if name != "call_updated"), heard


def with_call_id(body: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return json.loads(json.dumps(body).replace(old, new))


@needs_captured
@pytest.mark.slow
def test_two_established_posted_at_once_to_four_workers_give_media_active_once(
    counting_server: tuple[Gunicorn, Path],
) -> None:
    server, count_file = counting_server
    establishing, established, with_audio = simple_test()[:3]
    call_ids = [str(uuid.uuid4()) for _ in range(20)]
    for call_id in call_ids:
        assert send_all(server.url + "/api/calls", [with_call_id(establishing, P2P, call_id)]) == [202]
        pair = [with_call_id(established, P2P, call_id), with_call_id(with_audio, P2P, call_id)]
        start = threading.Barrier(2)
        statuses: list[list[int]] = []

        def post(body: dict[str, Any], start: threading.Barrier = start, statuses: list[list[int]] = statuses) -> None:
            start.wait()  # both posts leave together
            statuses.append(send_all(server.url + "/api/calls", [body], concurrency=1))

        threads = [threading.Thread(target=post, args=(body,)) for body in pair]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [[202], [202]]
    heard = [json.loads(line) for line in count_file.read_text().splitlines()]
    media = Counter(event["call"] for event in heard if event["signal"] == "call_media_active")
    established_count = Counter(
        event["call"] for event in heard if event["signal"] == "call_state_changed" and event["sender"] == "established"
    )
    assert media == {call_id: 1 for call_id in call_ids}
    assert established_count == {call_id: 1 for call_id in call_ids}
    assert len({event["pid"] for event in heard}) > 1


@needs_captured
def test_failed_p2p(poster: Any, recorder: Recorder) -> None:
    for body in captured("FailedP2P", "CallEstablishing.json", "CallDeleted.json"):
        poster(body)
    assert counts(recorder) == {("call_state_changed", "establishing"): 1, ("call_state_changed", "terminated"): 1}
    (ended,) = [kw for name, sender, kw in recorder.sent if sender == "terminated"]
    assert ended["end_reason"] == "The conversation ended."
    assert ended["call"].end["resultInfo"]["subcode"] == 5002


@needs_captured
def test_group_call_as_the_peer_replays_it(poster: Any, recorder: Recorder) -> None:
    for body in captured(
        "GroupCalls",
        "GroupCallEstablishing.json",
        "GroupCallEstablished.json",
        "GroupCallUserJoin.json",
        "GroupCallEnd.json",
    ):
        poster(body)
    (joined,) = [kw["participants"] for name, _, kw in recorder.sent if name == "participants_joined"]
    assert len(joined) == 2
    assert sorted(p["isBot"] for p in joined) == [False, True]
    assert recorder.count("call_state_changed", "terminated") == 1
    assert recorder.count("participants_left") == 0


@needs_captured
def test_group_call_with_the_bot_joining_first(poster: Any, recorder: Recorder) -> None:
    for body in captured(
        "GroupCalls",
        "GroupCallEstablishing.json",
        "GroupCallEstablished.json",
        "GroupCallBotJoin.json",
        "GroupCallUserJoin.json",
        "GroupCallEnd.json",
    ):
        poster(body)
    joined = [kw["participants"] for name, _, kw in recorder.sent if name == "participants_joined"]
    assert [[p["isBot"] for p in group] for group in joined] == [[True], [False]]
    assert joined[1][0]["info"]["identity"]["user"]["displayName"] == "Sam2"


@needs_captured
def test_call_updates_fire_call_updated_with_what_changed(poster: Any, recorder: Recorder) -> None:
    bodies = captured("P2P/CallUpdates")
    for body in bodies[:2]:
        poster(body)
    assert counts(recorder) == {("call_state_changed", "establishing"): 1, ("call_state_changed", "established"): 1}
    expected_new = [
        {"mediaState", "coOrganizers", "meetingCapability"},
        {"chatInfo", "meetingProperties", "replacesContext"},
        {"meetingInfo"},
    ]
    for body, fields in zip(bodies[2:5], expected_new, strict=True):
        recorder.sent.clear()
        poster(body)
        updates = [kw["changes"] for name, _, kw in recorder.sent if name == "call_updated"]
        assert len(updates) == 1
        assert set(updates[0]) == fields
        assert recorder.count("call_state_changed") == 0
    recorder.sent.clear()
    poster(bodies[4])  # a pure duplicate
    assert counts(recorder) == {}


def docs_participant(name: str, index: int = 0) -> dict[str, Any]:
    return copy.deepcopy(load_json(DOCS / name)["value"][0]["resourceData"][index])


@needs_captured
def test_roster_churn_from_the_docs_bodies(poster: Any, recorder: Recorder, read_call: Any) -> None:
    call_id = "2f1a1100-b174-40a0-aba7-0b405e01ed92"
    url = f"/communications/calls/{call_id}/participants"
    john, bot = (
        docs_participant("participants-updated-roster.json", 0),
        docs_participant("participants-updated-roster.json", 1),
    )
    invited = docs_participant("invite-participants-roster-updated.json")  # id still null: known by identity

    def roster(sequence: int, *participants: dict[str, Any]) -> dict[str, Any]:
        listed = [dict(p, rosterSequenceNumber=sequence) for p in participants]
        return envelope({"changeType": "updated", "resourceUrl": url, "resourceData": listed})

    def heard(signal: str) -> list[list[Any]]:
        return [[p.get("id") for p in kw["participants"]] for name, _, kw in recorder.sent if name == signal]

    poster(roster(1, john, bot))
    poster(roster(2, john, bot, invited))
    invited_with_id = dict(invited, id="b9f3bd2b-0a11-4bb6-a7a0-9bb1e4a3c4a1")
    poster(roster(3, john, bot, invited_with_id))  # the invited participant gets its id: not a new join
    muted_john = dict(john, isMuted=False)
    poster(roster(4, muted_john, bot, invited_with_id))  # a mute change: updated, nobody joined or left
    poster(roster(5, bot, dict(invited_with_id, removedState={"reason": "left"})))  # John left; the invitee too
    poster(roster(2, john, bot, invited))  # late and older: ignored

    assert heard("participants_joined") == [[john["id"], bot["id"]], [None]]
    assert heard("participants_left") == [[john["id"], "b9f3bd2b-0a11-4bb6-a7a0-9bb1e4a3c4a1"]]
    assert recorder.count("participants_updated") == 5
    call = read_call(call_id)
    assert [p["id"] for p in call["participants"]] == [bot["id"]]
    assert call["rosterVersion"] == 5
    assert "older than roster 5" in call["stale"][-1]["reason"]


@needs_captured
@pytest.mark.parametrize(
    ("name", "succeeded"),
    [
        ("senddtmftones-completed.json", True),
        ("senddtmftones-canceled.json", False),
        ("senddtmftones-unknown.json", False),
        ("record-canceled.json", False),
        ("record-completed.json", True),
        ("playprompt-completed.json", True),
    ],
)
def test_operation_completed_tells_the_truth(poster: Any, recorder: Recorder, name: str, succeeded: bool) -> None:
    poster(load_json(DOCS / name))
    (kwargs,) = [kw for signal, _, kw in recorder.sent if signal == "operation_completed"]
    assert kwargs["succeeded"] is succeeded
    assert {"status", "completion_reason", "result_info", "client_context", "operation", "call"} <= set(kwargs)
