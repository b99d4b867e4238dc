"""The schemas, on Graph's quirks and on Microsoft's published bodies."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.builders import call_notification, envelope
from webhook.errors import PayloadError
from webhook.schemas import load_notifications

from .support import docs_files, load_json

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
