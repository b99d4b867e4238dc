"""Microsoft's published bodies and a real bot's captured calls, through the real endpoint."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import Recorder
from .support import captured, docs_files, history_states, load_json

DOCS = docs_files()
needs_payloads = pytest.mark.payloads


def expected_call_id(url: str) -> str:
    """The call id as a person would read it off the URL: its GUID, lower-case and dashed."""
    hex32 = re.search(r"calls/([0-9a-fA-F-]{32,36})", url).group(1).replace("-", "").lower()  # type: ignore[union-attr]
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


@needs_payloads
@pytest.mark.parametrize("path", DOCS, ids=[p.stem for p in DOCS])
def test_each_docs_body_lands_in_its_call_with_the_right_state(
    path: Path, poster: Any, read_call: Any, recorder: Recorder
) -> None:
    body = load_json(path)
    poster(body)
    (notification,) = body["value"]
    url = notification.get("resourceUrl") or notification["resource"]
    call = read_call(expected_call_id(url))
    data = notification["resourceData"]
    if "/operations/" in url:
        op_id = url.rstrip("/").rsplit("/", 1)[-1]
        assert [
            op["status"] for op in call["operations"] if op["id"].replace("-", "") == op_id.replace("-", "").lower()
        ]
        assert recorder.count("operation_completed") == 1
    elif url.endswith("/participants"):
        assert len(call["participants"]) == len(data)
        assert recorder.count("participants_updated") == 1
    else:
        expected = "terminated" if notification["changeType"].lower() == "deleted" else data["state"]
        assert call["state"] == expected
        assert history_states(call) == [expected]
    assert recorder.count("notification_received") == 1


@needs_payloads
def test_all_docs_bodies_in_one_batch_are_accepted_and_each_notification_heard(
    client: Any, read_call: Any, recorder: Recorder
) -> None:
    notifications = [n for path in DOCS for n in load_json(path)["value"]]
    response = client.post("/api/calls", json={"value": notifications})
    assert response.status_code == 202
    assert recorder.count("notification_received") == len(notifications) == len(DOCS)
    for notification in notifications:
        read_call(expected_call_id(notification.get("resourceUrl") or notification["resource"]))


needs_captured = pytest.mark.payloads


@needs_captured
def test_captured_p2p_call_in_arrival_order(poster: Any, read_call: Any, recorder: Recorder) -> None:
    for body in captured("P2P/SimpleTest"):
        poster(body)
    call = read_call("6f1f5c00-8c1b-47f1-be9d-660c501041a9")
    assert history_states(call) == ["establishing", "established", "terminated"]
    assert call["data"]["mediaState"] == {"@odata.type": "#microsoft.graph.callMediaState", "audio": "active"}
    assert [t["tone"] for t in call["tones"]] == ["tone1"]
    assert [op["type"] for op in call["operations"]] == ["playPrompt"]
    assert call["endReason"] == "The conversation ended."
    assert recorder.count("call_state_changed", "terminated") == 1


@needs_captured
def test_captured_call_updates_keep_each_new_field_without_new_transitions(poster: Any, read_call: Any) -> None:
    for body in captured("P2P/CallUpdates"):
        poster(body)
    call = read_call(captured("P2P/CallUpdates")[0]["value"][0]["resourceUrl"].split("/")[3])
    assert history_states(call) == ["establishing", "established"]
    assert {"mediaState", "chatInfo"} <= set(call["data"])
    assert len(call["participants"]) == 2


@needs_captured
def test_captured_failed_call_ends_with_its_reason(poster: Any, read_call: Any) -> None:
    for body in captured("FailedP2P", "CallEstablishing.json", "CallDeleted.json"):
        poster(body)
    call = read_call("6c1f5e00-76e1-4d4a-9a16-dc2b92a449dd")
    assert history_states(call) == ["establishing", "terminated"]
    assert call["endReason"] == "The conversation ended."


@needs_captured
def test_captured_group_call(poster: Any, read_call: Any, recorder: Recorder) -> None:
    order = (
        "GroupCallEstablishing.json",
        "GroupCallEstablished.json",
        "GroupCallBotJoin.json",
        "GroupCallUserJoin.json",
        "GroupCallEnd.json",
    )
    for body in captured("GroupCalls", *order):
        poster(body)
    call = read_call("631f6000-766a-4c6f-9da3-8755ebe44d19")
    assert history_states(call) == ["establishing", "established", "terminated"]
    assert len(call["participants"]) == 2
    assert recorder.count("participants_updated") == 2
