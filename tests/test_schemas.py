"""The schemas, on Graph's quirks and on Microsoft's published bodies."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from marshmallow import ValidationError

from webhook.builders import (
    call_notification,
    envelope,
    incoming_call,
    operation_notification,
    participant,
    result_info,
    roster_notification,
    tone_notification,
)
from webhook.errors import PayloadError
from webhook.parse import load_notifications
from webhook.plain import plain_notifications, plain_roster
from webhook.schemas import EnvelopeSchema, ParticipantSchema

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


def _by_the_schemas(body: Any) -> Any:
    """What the schemas alone make of a body: its notifications, or the messages they refuse it with."""
    try:
        return EnvelopeSchema().load(body)["value"]
    except ValidationError as exc:
        return exc.messages


@pytest.mark.payloads
def test_bodies_as_graph_sends_them_skip_the_schemas_and_load_exactly_as_they_would() -> None:
    bodies = [load_json(path) for path in DOCS] + [load_json(path) for path in sorted(CAPTURED.glob("*/*.json"))]
    plain = [plain_notifications(body) for body in bodies]
    taken = [(found, body) for found, body in zip(plain, bodies, strict=True) if found is not None]
    assert len(taken) == len(bodies)  # every real body, the Delete-call page's numeric-string codes included
    for found, body in taken:
        assert found == _by_the_schemas(body)


# A body as Graph sends it, then often one change at one place: a value the schemas convert (a numeric string, a
# float code, subCode, a lone participant) or refuse. Each change is where the short way must decline.
_TEXT = st.one_of(st.text(max_size=3), st.none())
_RESULT = st.fixed_dictionaries(
    {}, optional={"code": st.integers(), "subcode": st.integers(), "message": _TEXT, "more": _VALUES}
)
_CALL_DATA = st.fixed_dictionaries(
    {},
    optional={name: _TEXT for name in ("id", "state", "direction", "callChainId", "terminationReason")}
    | {
        "resultInfo": st.one_of(_RESULT, st.none()),
        "toneInfo": st.fixed_dictionaries({}, optional={"tone": _TEXT, "sequenceId": st.integers()}),
        "mediaState": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
        "other": _VALUES,
    },
)
_OPERATION_DATA = st.fixed_dictionaries(
    {},
    optional={name: _TEXT for name in ("id", "status", "clientContext", "completionReason")}
    | {"resultInfo": st.one_of(_RESULT, st.none()), "other": _VALUES},
)
_PARTICIPANT = st.fixed_dictionaries(
    {},
    optional={
        "id": _TEXT,
        "info": st.dictionaries(st.text(max_size=3), _VALUES, max_size=2),
        "isMuted": st.booleans(),
        "rosterSequenceNumber": st.integers(),
        "other": _VALUES,
    },
)
_KINDS = {
    "/communications/calls/c1": _CALL_DATA,
    "/app/calls/c1": _CALL_DATA,
    "/communications/calls/c1/operations/o1": _OPERATION_DATA,
    "/communications/calls/c1/participants": st.lists(_PARTICIPANT, max_size=3),
    "/communications/calls/c1/audioRoutingGroups/g1": _VALUES,
}
_ODD = st.sampled_from(["200", " -7 ", 3.0, True, 5, "x", None, [], {}, ""])


@st.composite
def _items(draw: st.DrawFn) -> dict[str, Any]:
    url = draw(st.sampled_from(sorted(_KINDS)))
    item: dict[str, Any] = {
        "changeType": draw(st.sampled_from(["created", "Updated", "deleted"])),
        draw(st.sampled_from(["resourceUrl", "resource"])): url,
        "resourceData": draw(_KINDS[url]),
    }
    if draw(st.booleans()):
        item["other"] = draw(_VALUES)
    return item


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (a key of an object, an index of an array), outermost first."""
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _places(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _places(inner, (*path, index))
    return found


def _changed(body: Any, path: tuple[Any, ...], odd: Any) -> Any:
    """A copy of ``body`` with ``odd`` at ``path`` (``"subCode"``: the key there renamed to it)."""
    if not path:
        return odd
    body = copy.deepcopy(body)
    holder = body
    for step in path[:-1]:
        holder = holder[step]
    if odd == "subCode" and isinstance(holder, dict):
        holder["subCode"] = holder.pop(path[-1])
    else:
        holder[path[-1]] = odd
    return body


@st.composite
def _bodies(draw: st.DrawFn) -> Any:
    body: Any = {"value": draw(st.lists(_items(), min_size=1, max_size=3))}
    if draw(st.booleans()):  # one change, somewhere
        body = _changed(body, draw(st.sampled_from(_places(body))), draw(st.one_of(_ODD, st.just("subCode"))))
    return body


_GRAPH_BODIES = [
    envelope(incoming_call("c1")),
    envelope(call_notification("c1", "established", result=result_info(200, 5), mediaState={"audio": "active"})),
    envelope(tone_notification("c1", "5", 3)),
    envelope(operation_notification("c1", "o1")),
    envelope(roster_notification("c1", [participant("p1", "Ann", sequence=4), participant(None, "Bob")])),
]


@pytest.mark.parametrize("body", _GRAPH_BODIES, ids=["incoming", "established", "tone", "operation", "roster"])
def test_the_short_way_declines_or_agrees_wherever_one_value_is_changed(body: Any) -> None:
    assert plain_notifications(body) == _by_the_schemas(body)  # as Graph sends it: the short way
    for path in _places(body):
        for odd in ["200", " -7 ", 3.0, True, 5, "x", None, [], {}, "", "subCode"]:
            changed = _changed(body, path, odd)
            plain = plain_notifications(changed)
            assert plain is None or plain == _by_the_schemas(changed), (path, odd)


@settings(max_examples=500, deadline=None)
@given(_bodies())
def test_the_short_way_for_bodies_agrees_with_the_schemas_or_leaves_the_body_to_them(body: Any) -> None:
    plain = plain_notifications(body)
    assert plain is None or plain == _by_the_schemas(body)


def test_the_short_way_reads_the_fields_it_checks_off_the_schemas_and_refuses_one_it_cannot_check() -> None:
    from marshmallow import fields

    from webhook.plain import _json_types
    from webhook.schemas import GraphSchema

    class Counted(GraphSchema):
        label = fields.String(allow_none=True)
        count = fields.Integer(allow_none=True)  # converts "5" and 5.0: the short way has no rule for it

    assert _json_types(Counted(), handled=("count",)) == (("label", str),)
    with pytest.raises(TypeError, match=r"Counted\.count: teach the short way"):
        _json_types(Counted())
