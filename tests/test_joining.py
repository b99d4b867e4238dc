"""Policy-based recording: a participantJoiningNotification is answered in the response body with the
handlers' decision, through the real endpoint with Graph's JWT checked first; without a decision in time, the
configured default."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from webhook import create_app, on
from webhook.builders import envelope, new_id, participant_joining
from webhook.errors import ConfigError
from webhook.joining import JoinResponse, accept, invite_new_bot, reject
from webhook.model import Call
from webhook.testing import LocalGraphKeys

from .conftest import ADMIN_TOKEN
from .support import VERIFIED_APP_ID, metric_value, verifying_client

APP_ID = VERIFIED_APP_ID
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def receiver(keys: LocalGraphKeys, tmp_path: Path, **settings: Any) -> FlaskClient:
    client: FlaskClient = verifying_client(keys, tmp_path, ADMIN_TOKEN, **settings)
    return client


def post_joining(client: FlaskClient, keys: LocalGraphKeys, body: Any) -> Any:
    return client.post("/api/calls", json=body, headers={"Authorization": f"Bearer {keys.token(aud=APP_ID)}"})


def test_an_accepting_handler_is_answered_in_the_body_and_nothing_is_stored(
    webhook_keys: LocalGraphKeys, tmp_path: Path
) -> None:
    heard: list[tuple[str, str, str | None]] = []

    @on.participant_joining
    def admit(sender: str, joining: Call) -> JoinResponse:
        caller = joining.caller
        heard.append((sender, joining.id, caller.display_name if caller else None))
        return accept()

    client = receiver(webhook_keys, tmp_path)
    bot_call, joining_call = new_id(), new_id()
    before = metric_value("participant_joining_total", response="accept", by="handler")
    response = post_joining(
        client, webhook_keys, envelope(participant_joining(bot_call, joining_call_id=joining_call, observed="Erin"))
    )
    assert response.status_code == 200
    assert response.get_json() == {"@odata.type": "#microsoft.graph.acceptJoinResponse"}
    assert response.mimetype == "application/json"
    assert heard == [(bot_call, joining_call, "Erin")]
    assert metric_value("participant_joining_total", response="accept", by="handler") == before + 1
    assert client.get(f"/api/calls/{bot_call}", headers=ADMIN).status_code == 404  # not a call of its own
    files = (tmp_path / "journal").glob("*.jsonl")
    journaled = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert any(bot_call in record["body"] for record in journaled)  # accepted, so kept for replay


def test_the_most_cautious_decision_wins_whatever_the_order(webhook_keys: LocalGraphKeys, tmp_path: Path) -> None:
    @on.participant_joining
    def admit() -> JoinResponse:
        return accept()

    @on.participant_joining
    def elsewhere() -> JoinResponse:
        return invite_new_bot("https://recorder-2.contoso.com/api/calls")

    @on.participant_joining
    def no_opinion() -> None:
        return None

    client = receiver(webhook_keys, tmp_path)
    answered = post_joining(client, webhook_keys, envelope(participant_joining(new_id()))).get_json()
    assert answered == {
        "@odata.type": "#microsoft.graph.inviteNewBotResponse",
        "inviteUri": "https://recorder-2.contoso.com/api/calls",
    }

    @on.participant_joining
    def full() -> JoinResponse:
        return reject("busy")

    answered = post_joining(client, webhook_keys, envelope(participant_joining(new_id()))).get_json()
    assert answered == {"@odata.type": "#microsoft.graph.rejectJoinResponse", "reason": "busy"}


@pytest.mark.parametrize(("default", "kind"), [("reject", "rejectJoinResponse"), ("accept", "acceptJoinResponse")])
def test_without_a_handler_the_default_is_answered(
    webhook_keys: LocalGraphKeys, tmp_path: Path, default: str, kind: str
) -> None:
    client = receiver(webhook_keys, tmp_path, JOINING_DEFAULT=default)
    response = post_joining(client, webhook_keys, envelope(participant_joining(new_id())))
    assert response.status_code == 200
    assert response.get_json()["@odata.type"] == f"#microsoft.graph.{kind}"


def test_a_failing_or_confused_handler_leaves_it_to_the_others(webhook_keys: LocalGraphKeys, tmp_path: Path) -> None:
    @on.participant_joining
    def broken() -> JoinResponse:
        raise RuntimeError("the recorder's database is down")

    @on.participant_joining
    def confused() -> str:
        return "yes"

    @on.participant_joining
    def admit() -> JoinResponse:
        return accept()

    client = receiver(webhook_keys, tmp_path)
    response = post_joining(client, webhook_keys, envelope(participant_joining(new_id())))
    assert response.get_json() == {"@odata.type": "#microsoft.graph.acceptJoinResponse"}


def test_a_handler_too_slow_gets_the_default_in_time(webhook_keys: LocalGraphKeys, tmp_path: Path) -> None:
    release = threading.Event()

    @on.participant_joining
    def slow() -> JoinResponse:
        release.wait(10)
        return accept()

    client = receiver(webhook_keys, tmp_path, JOINING_TIMEOUT_SECONDS="0.2")
    before = metric_value("participant_joining_total", response="reject", by="timeout")
    try:
        response = post_joining(client, webhook_keys, envelope(participant_joining(new_id())))
    finally:
        release.set()
    assert response.get_json() == {"@odata.type": "#microsoft.graph.rejectJoinResponse", "reason": "busy"}
    assert metric_value("participant_joining_total", response="reject", by="timeout") == before + 1


def test_no_token_no_decision(webhook_keys: LocalGraphKeys, tmp_path: Path) -> None:
    asked: list[str] = []

    @on.participant_joining
    def admit(sender: str) -> JoinResponse:
        asked.append(sender)
        return accept()

    client = receiver(webhook_keys, tmp_path)
    response = client.post("/api/calls", json=envelope(participant_joining(new_id())))
    assert response.status_code == 401
    assert asked == []


def test_other_notifications_in_the_body_are_applied_as_ever(webhook_keys: LocalGraphKeys, tmp_path: Path) -> None:
    from webhook.builders import incoming_call

    client = receiver(webhook_keys, tmp_path)
    incoming = new_id()
    response = post_joining(client, webhook_keys, envelope(incoming_call(incoming), participant_joining(new_id())))
    assert response.status_code == 200
    assert client.get(f"/api/calls/{incoming}", headers=ADMIN).get_json()["state"] == "incoming"


def test_decisions_are_made_as_graph_reads_them() -> None:
    rejected = {"@odata.type": "#microsoft.graph.rejectJoinResponse", "reason": "forbidden"}
    assert reject("forbidden").to_graph() == rejected
    with pytest.raises(ValueError, match="none, busy or forbidden"):
        reject("later")
    with pytest.raises(ValueError, match="https callback URL"):
        invite_new_bot("recorder-2")


def test_a_handler_cannot_be_deferred_nor_ask_for_what_is_not_sent() -> None:
    with pytest.raises(TypeError, match="participant_joining never sends"):

        @on.participant_joining
        def needs_call(call: Call) -> None: ...

    with pytest.raises(TypeError):
        on.participant_joining(deferred=True)  # type: ignore[call-arg]


@pytest.mark.parametrize(("value", "message"), [("5", "at most 4.5"), ("later", "must be one of reject, accept")])
def test_joining_settings_are_checked(tmp_path: Path, value: str, message: str) -> None:
    name = "JOINING_TIMEOUT_SECONDS" if value == "5" else "JOINING_DEFAULT"
    with pytest.raises(ConfigError, match=message):
        create_app({"AUTH": "disabled", "STORE_URL": f"sqlite:///{tmp_path}/c.sqlite3", name: value})
