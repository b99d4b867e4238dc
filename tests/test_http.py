"""POST /api/calls and the read API, through Flask's test client."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from webhook import create_app
from webhook.builders import call_notification, envelope, incoming_call, new_id

from .conftest import ADMIN_TOKEN, Recorder

CALL = "57dab8b1-894c-409a-b240-bd8beae78896"
URL = f"/communications/calls/{CALL}"


def post_json(client: Any, body: Any) -> Any:
    # Flask's json= treats None as "no body"; send the JSON text itself.
    return client.post("/api/calls", data=json.dumps(body), content_type="application/json")


def notification(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"changeType": "updated", "resourceUrl": URL, "resourceData": {"state": "established"}}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not ...}


def test_accepted_body_gets_202_with_an_empty_body(client: Any, recorder: Recorder) -> None:
    response = client.post("/api/calls", json=envelope(incoming_call(CALL)))
    assert response.status_code == 202 and response.data == b""
    assert recorder.names() == [("notification_received", "call"), ("call_state_changed", "incoming")]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"]
)
def test_json_content_types_are_accepted(client: Any, content_type: str) -> None:
    response = client.post("/api/calls", data=json.dumps(envelope(incoming_call(CALL))), content_type=content_type)
    assert response.status_code == 202


RAW_BAD = [
    # (id, content type, raw body, status, error code)
    ("text-plain", "text/plain", b'{"value": []}', 415, "unsupported_media_type"),
    ("form", "application/x-www-form-urlencoded", b"value=1", 415, "unsupported_media_type"),
    ("no-content-type", None, b'{"value": []}', 415, "unsupported_media_type"),
    ("xml", "application/xml", b"<value/>", 415, "unsupported_media_type"),
    ("empty-body", "application/json", b"", 400, "malformed_json"),
    ("whitespace-body", "application/json", b"  \n", 400, "malformed_json"),
    ("truncated", "application/json", b'{"value": [', 400, "malformed_json"),
    ("single-quotes", "application/json", b"{'value': []}", 400, "malformed_json"),
    ("trailing-comma", "application/json", b'{"value": [],}', 400, "malformed_json"),
    ("nan", "application/json", b'{"value": [{"changeType": NaN}]}', 400, "malformed_json"),
    ("bad-utf8", "application/json", b'{"value": "\xff\xfe\xfa"}', 400, "malformed_json"),
    ("too-deep", "application/json", b'{"value": ' + b"[" * 100 + b"]" * 100 + b"}", 400, "malformed_json"),
    ("deeper-than-parser", "application/json", b"[" * 100000, 400, "malformed_json"),
    # Valid JSON, but Python reads it as infinity, which every output would write as the invalid Infinity.
    ("infinite-number", "application/json", b'{"value": [], "unknownField": 1e999}', 400, "malformed_json"),
    ("negative-infinite-number", "application/json", b'{"value": [], "x": {"y": -1E400}}', 400, "malformed_json"),
]


@pytest.mark.parametrize(
    ("content_type", "raw", "status", "code"), [r[1:] for r in RAW_BAD], ids=[r[0] for r in RAW_BAD]
)
def test_bad_raw_bodies(
    client: Any, recorder: Recorder, store_path: Path, content_type: str | None, raw: bytes, status: int, code: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/calls", data=raw, headers=headers)
    assert response.status_code == status
    assert response.get_json()["error"] == code
    assert response.get_json()["message"]
    assert recorder.sent == []


BAD_BODIES: list[tuple[str, Any]] = [
    ("array", []),
    ("string", "hello"),
    ("number", 42),
    ("null", None),
    ("no-value", {"@odata.type": "#microsoft.graph.commsNotifications"}),
    ("empty-value", {"value": []}),
    ("value-object", {"value": {"changeType": "updated"}}),
    ("value-string", {"value": "x"}),
    ("value-null", {"value": None}),
    ("notification-string", {"value": ["x"]}),
    ("notification-null", {"value": [None]}),
    ("notification-array", {"value": [[1]]}),
    ("no-resource-url", {"value": [notification(resourceUrl=...)]}),
    ("resource-url-number", {"value": [notification(resourceUrl=5)]}),
    ("resource-url-empty", {"value": [notification(resourceUrl="")]}),
    ("resource-url-not-a-call", {"value": [notification(resourceUrl="/communications/onlineMeetings/x")]}),
    ("resource-url-no-id", {"value": [notification(resourceUrl="/communications/calls/")]}),
    ("resource-url-chats", {"value": [notification(resourceUrl="/chats/x/messages")]}),
    # A pattern ending in $ also matches before a trailing newline: that spelling would be a second call.
    ("call-id-newline", {"value": [notification(resourceUrl=URL + "\n/participants", resourceData=[])]}),
    ("call-id-newline-state", {"value": [notification(resourceUrl=URL + "\n/")]}),
    ("legacy-resource-not-a-call", {"value": [notification(resourceUrl=..., resource="/app/meetings/x")]}),
    ("no-change-type", {"value": [notification(changeType=...)]}),
    ("change-type-number", {"value": [notification(changeType=1)]}),
    ("change-type-empty", {"value": [notification(changeType="")]}),
    ("state-number", {"value": [notification(resourceData={"state": 3})]}),
    ("state-object", {"value": [notification(resourceData={"state": {"x": 1}})]}),
    ("result-code-word", {"value": [notification(resourceData={"resultInfo": {"code": "two hundred"}})]}),
    ("result-code-float", {"value": [notification(resourceData={"resultInfo": {"code": 200.5}})]}),
    ("result-code-bool", {"value": [notification(resourceData={"resultInfo": {"code": True}})]}),
    ("result-info-string", {"value": [notification(resourceData={"resultInfo": "ok"})]}),
    ("tone-info-list", {"value": [notification(resourceData={"toneInfo": [1]})]}),
    ("tone-sequence-word", {"value": [notification(resourceData={"toneInfo": {"tone": "tone1", "sequenceId": "x"}})]}),
    ("call-data-list", {"value": [notification(resourceData=[{"state": "established"}])]}),
    ("call-data-string", {"value": [notification(resourceData="established")]}),
    ("roster-strings", {"value": [notification(resourceUrl=URL + "/participants", resourceData=["p1"])]}),
    (
        "roster-muted-word",
        {
            "value": [
                notification(resourceUrl=URL + "/participants", resourceData=[{"id": "p", "isMuted": "sometimes"}])
            ]
        },
    ),
    (
        "operation-status-number",
        {"value": [notification(resourceUrl=URL + "/operations/o1", resourceData={"status": 1})]},
    ),
    ("operation-data-list", {"value": [notification(resourceUrl=URL + "/operations/o1", resourceData=[])]}),
    ("one-bad-in-a-batch", {"value": [notification(), notification(resourceData={"state": 7})]}),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES], ids=[i for i, _ in BAD_BODIES])
def test_bad_bodies_get_400_and_change_nothing(
    client: Any, recorder: Recorder, admin: dict[str, str], body: Any
) -> None:
    response = post_json(client, body)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()
    assert error["error"] in {"invalid_payload", "invalid_envelope"}
    assert set(error) == {"error", "message", "details"}
    assert recorder.sent == []
    assert client.get(f"/api/calls/{CALL}", headers=admin).status_code == 404
    assert client.get("/api/calls", headers=admin).get_json()["count"] == 0


def test_the_error_names_the_wrong_field(client: Any) -> None:
    response = client.post("/api/calls", json={"value": [notification(), notification(resourceData={"state": 7})]})
    error = response.get_json()
    assert "value.1.resourceData.state" in error["message"]
    assert error["details"]["fields"]["value"]["1"]["resourceData"]["state"] == ["Not a valid string."]


def test_body_over_the_limit_gets_413_from_content_length(store_url: str) -> None:
    client = create_app({"AUTH": "disabled", "STORE_URL": store_url, "MAX_BODY_BYTES": 1000}).test_client()
    body = envelope(call_notification(CALL, "established", padding="x" * 2000))
    response = client.post("/api/calls", json=body)
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"
    assert "1000" in response.get_json()["message"]


def test_chunked_body_over_the_limit_gets_413(store_url: str) -> None:
    client = create_app({"AUTH": "disabled", "STORE_URL": store_url, "MAX_BODY_BYTES": 1000}).test_client()
    raw = json.dumps(envelope(call_notification(CALL, "established", padding="x" * 2000))).encode()
    response = client.post(
        "/api/calls",
        input_stream=io.BytesIO(raw),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )  # as gunicorn says for chunked
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


def test_unknown_sub_resource_is_accepted_and_heard(client: Any, recorder: Recorder) -> None:
    body = {"value": [notification(resourceUrl=URL + "/audioRoutingGroups/g1", resourceData={"anything": 1})]}
    assert client.post("/api/calls", json=body).status_code == 202
    assert recorder.names() == [("notification_received", "other")]


def test_other_methods_and_paths_answer_json(client: Any) -> None:
    assert client.put("/api/calls").status_code == 405
    assert client.put("/api/calls").get_json()["error"] == "method_not_allowed"
    assert client.get("/nowhere").get_json()["error"] == "not_found"


# Read API


def test_read_api_needs_the_admin_token(client: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}):
        response = client.get("/api/calls", headers=headers)
        assert response.status_code == 401
        assert client.get(f"/api/calls/{CALL}", headers=headers).status_code == 401


def test_read_api_without_a_configured_token_is_forbidden_and_says_how_to_enable_it(store_url: str) -> None:
    client = create_app({"AUTH": "disabled", "STORE_URL": store_url}).test_client()
    response = client.get("/api/calls", headers={"Authorization": "Bearer "})
    assert response.status_code == 403
    assert "WEBHOOK_ADMIN_TOKEN" in response.get_json()["message"]


def test_read_a_call_by_any_spelling_of_its_id(client: Any, admin: dict[str, str], poster: Any) -> None:
    poster(envelope(incoming_call(CALL)))
    response = client.get("/api/calls/57DAB8B1894C409AB240BD8BEAE78896", headers=admin)
    body = response.get_json()
    assert {
        "id",
        "state",
        "direction",
        "resultInfo",
        "terminationReason",
        "endReason",
        "participants",
        "operations",
        "history",
        "createdAt",
        "updatedAt",
    } <= set(body)
    assert (body["id"], body["state"], body["direction"]) == (CALL, "incoming", "incoming")
    assert body["history"][0] == {"from": None, "to": "incoming", "changeType": "created", "at": body["createdAt"]}
    assert client.get(f"/api/calls/{new_id()}", headers=admin).status_code == 404


def test_list_calls_by_state(client: Any, admin: dict[str, str], poster: Any) -> None:
    ids = [new_id() for _ in range(3)]
    for call_id in ids:
        poster(envelope(incoming_call(call_id)))
    poster(envelope(call_notification(ids[0], "established")))
    listed = client.get("/api/calls?state=Established", headers=admin).get_json()
    assert [c["id"] for c in listed["calls"]] == [ids[0]]
    assert client.get("/api/calls", headers=admin).get_json()["count"] == 3
    assert client.get("/api/calls?limit=2", headers=admin).get_json()["count"] == 2
    for bad in ("0", "x", "5000", "-1"):
        assert client.get(f"/api/calls?limit={bad}", headers=admin).status_code == 400


# No input yields a 500.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
urls = (
    st.sampled_from([URL, URL + "/participants", URL + "/operations/o1", "/app/calls/X", "calls/x", "", "/"])
    | st.text()
)
resource_data = (
    st.fixed_dictionaries(
        {},
        optional={
            "state": json_values | st.sampled_from(["established", "terminated", "Hold"]),
            "resultInfo": json_values
            | st.fixed_dictionaries({}, optional={"code": json_values, "subCode": json_values}),
            "toneInfo": json_values,
            "id": json_values,
            "status": json_values,
        },
    )
    | json_values
)
graphish = (
    st.fixed_dictionaries(
        {
            "value": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "changeType": st.sampled_from(["created", "updated", "deleted", "Deleted"]) | json_values,
                        "resourceUrl": urls | json_values,
                        "resource": urls,
                        "resourceData": resource_data,
                    },
                )
                | json_values,
                max_size=3,
            )
        }
    )
    | json_values
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=graphish)
def test_no_generated_body_yields_a_500(client: Any, body: Any) -> None:
    response = post_json(client, body)
    assert response.status_code in (202, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        assert response.get_json()["error"] in {"invalid_payload", "invalid_envelope", "malformed_json"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_no_generated_bytes_yield_a_500(client: Any, raw: bytes) -> None:
    response = client.post("/api/calls", data=raw, content_type="application/json")
    assert response.status_code in (202, 400)


def test_the_202_is_empty_and_claims_no_content_type(client: Any) -> None:
    response = post_json(client, {"value": [notification()]})
    assert response.status_code == 202
    assert response.data == b""
    assert "Content-Type" not in response.headers


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_an_encoded_body_is_refused_with_415_saying_so(client: Any, recorder: Recorder, encoding: str) -> None:
    body = gzip.compress(json.dumps({"value": [notification()]}).encode())
    response = client.post(
        "/api/calls", data=body, headers={"Content-Type": "application/json", "Content-Encoding": encoding}
    )
    assert response.status_code == 415
    assert "not accepted" in response.get_json()["message"] and encoding in response.get_json()["message"]
    assert recorder.sent == []


def test_listing_by_an_unknown_state_names_the_states(client: Any, admin: dict[str, str]) -> None:
    response = client.get("/api/calls?state=bogus", headers=admin)
    assert response.status_code == 400
    assert "'bogus'" in response.get_json()["message"] and "established" in response.get_json()["message"]
    assert client.get("/api/calls?state=ESTABLISHED&active=on", headers=admin).status_code == 200
    assert client.get("/api/calls?active=sometimes", headers=admin).status_code == 400


def test_a_body_of_more_notifications_than_allowed_is_refused_whole(store_url: str, recorder: Recorder) -> None:
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url, "MAX_NOTIFICATIONS_PER_BODY": 3})
    client = app.test_client()
    moves = [call_notification(CALL, state) for state in ("incoming", "established", "hold", "established")]
    refused = client.post("/api/calls", json=envelope(*moves))
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "too_many_notifications"
    assert "at most 3" in refused.get_json()["message"]
    assert recorder.sent == []
    assert client.post("/api/calls", json=envelope(*moves[:3])).status_code == 202
