"""The schemas, on Graph's quirks and on Microsoft's published bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st
from marshmallow import ValidationError

from webhook.builders import call_notification, envelope
from webhook.errors import PayloadError
from webhook.schemas import ParticipantSchema, load_notifications, plain_roster

from .support import CAPTURED, docs_files, load_json

DOCS = docs_files()


@pytest.mark.payloads
@pytest.mark.parametrize("path", DOCS, ids=[p.stem for p in DOCS])
def test_every_docs_body_is_valid(path: Path) -> None:
    body = load_json(path)
    notifications = load_notifications(body)
    assert len(notifications) == len(body["value"])


def test_numeric_strings_and_sub_code_are_normalized_and_unknown_fields_kept() -> None:
    body = envelope(
        call_notification(
            "c1",
            "terminated",
            change_type="deleted",
            result={"code": "200", "subCode": "5001", "message": "m", "futureField": [1]},
            brandNewField={"x": 1},
        )
    )
    (n,) = load_notifications(body)
    assert n.data["resultInfo"] == {"code": 200, "subcode": 5001, "message": "m", "futureField": [1]}
    assert n.data["brandNewField"] == {"x": 1}
    assert n.data["@odata.type"] == "#microsoft.graph.call"


def test_unknown_change_type_and_state_values_are_accepted() -> None:
    (n,) = load_notifications(envelope(call_notification("c1", "someNewState", change_type="unknownFutureValue")))
    assert n.change_type == "unknownFutureValue" and n.data["state"] == "someNewState"


def test_a_lone_participant_object_is_read_as_a_roster_of_one() -> None:
    body = {
        "value": [
            {
                "changeType": "updated",
                "resourceUrl": "/communications/calls/c1/participants",
                "resourceData": {"id": "p1", "isMuted": True},
            }
        ]
    }
    (n,) = load_notifications(body)
    assert n.data == [{"id": "p1", "isMuted": True}]


def test_errors_name_the_field_with_its_path() -> None:
    body = envelope(call_notification("c1", "established"), call_notification("c1", 5))  # type: ignore[arg-type]
    with pytest.raises(PayloadError) as info:
        load_notifications(body)
    assert "value.1.resourceData.state" in info.value.message
    assert info.value.details["fields"] == {"value": {"1": {"resourceData": {"state": ["Not a valid string."]}}}}


def _rosters_in(body: Any) -> list[list[Any]]:
    found = []
    for notification in body.get("value", []) if isinstance(body, dict) else []:
        url = str(notification.get("resourceUrl") or notification.get("resource") or "")
        data = notification.get("resourceData")
        if url.rstrip("/").endswith("/participants") and data is not None:
            found.append(data if isinstance(data, list) else [data])
    return found


@pytest.mark.payloads
def test_rosters_as_graph_sends_them_skip_the_schema_and_load_exactly_as_it_would() -> None:
    bodies = [load_json(path) for path in DOCS] + [load_json(path) for path in sorted(CAPTURED.glob("*/*.json"))]
    rosters = [roster for body in bodies for roster in _rosters_in(body)]
    assert len(rosters) >= 5
    plain = [plain_roster(roster) for roster in rosters]
    assert all(found is not None for found in plain)  # every real roster takes the short way
    assert plain == [ParticipantSchema(many=True).load(roster) for roster in rosters]


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.lists(st.one_of(st.integers(), st.dictionaries(st.text(max_size=3), st.text(max_size=3))), max_size=2),
)
_FIELDS = st.sampled_from(
    ["id", "info", "isMuted", "isInLobby", "mediaStreams", "rosterSequenceNumber", "removedState", "other"]
)


@given(st.lists(st.dictionaries(_FIELDS, _VALUES), max_size=4))
def test_the_short_way_agrees_with_the_schema_or_leaves_the_roster_to_it(roster: list[dict[str, Any]]) -> None:
    plain = plain_roster(roster)
    try:
        loaded = ParticipantSchema(many=True).load(roster)
    except ValidationError:
        assert plain is None  # what the schema refuses never takes the short way
        return
    assert plain is None or plain == loaded
