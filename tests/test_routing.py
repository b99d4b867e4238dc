"""Region and instance routing through the real endpoint with Graph's JWT checked first: an incoming call a
route_incoming handler sends elsewhere is answered 307 (or 302) with its Location and nothing else happens
here; and WEBHOOK_INSTANCE_CALLBACK_URL, given to Graph in answer(), brings a call's notifications back to the
instance that answered it (against the fake Graph)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from webhook import create_app, on
from webhook.actions import CallActions
from webhook.builders import call_notification, envelope, incoming_call, new_id
from webhook.fakegraph import FakeGraph
from webhook.model import Call
from webhook.routing import Redirect, redirect_to
from webhook.testing import LocalGraphKeys

from .conftest import ADMIN_TOKEN, Recorder
from .support import VERIFIED_APP_ID, Served, free_port, history_states, metric_value, verifying_client

APP_ID = VERIFIED_APP_ID
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EMEA = "https://emea.bot.contoso.com/api/calls"


def receiver(keys: LocalGraphKeys, tmp_path: Path) -> FlaskClient:
    client: FlaskClient = verifying_client(
        keys, tmp_path, ADMIN_TOKEN, INSTANCE_CALLBACK_URL="https://me.bot.contoso.com/api/calls"
    )
    return client


def signed(keys: LocalGraphKeys, region: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {keys.token(aud=APP_ID)}"}
    if region is not None:
        headers["MS-Teams-Region"] = region
    return headers


def test_an_incoming_call_of_another_region_is_redirected_and_nothing_happens_here(
    webhook_keys: LocalGraphKeys, tmp_path: Path, recorder: Recorder
) -> None:
    @on.route_incoming
    def by_region(incoming: Call, headers: dict[str, str]) -> str | None:
        return EMEA if headers.get("MS-Teams-Region") == "EMEA" and incoming.caller is not None else None

    client = receiver(webhook_keys, tmp_path)
    away, home = new_id(), new_id()
    before = metric_value("redirects_total", status="307")
    response = client.post("/api/calls", json=envelope(incoming_call(away)), headers=signed(webhook_keys, "EMEA"))
    assert response.status_code == 307
    assert response.headers["Location"] == EMEA
    assert response.get_data() == b""
    assert metric_value("redirects_total", status="307") == before + 1
    assert client.get(f"/api/calls/{away}", headers=ADMIN).status_code == 404
    assert recorder.sent == []  # no handler here heard of it
    assert not list((tmp_path / "journal").glob("*.jsonl"))  # the instance it goes to journals it

    response = client.post("/api/calls", json=envelope(incoming_call(home)), headers=signed(webhook_keys, "AMER"))
    assert response.status_code == 202
    assert client.get(f"/api/calls/{home}", headers=ADMIN).get_json()["state"] == "incoming"


def test_only_incoming_calls_are_routed(webhook_keys: LocalGraphKeys, tmp_path: Path) -> None:
    asked: list[str] = []

    @on.route_incoming
    def everything_away(sender: str) -> str:
        asked.append(sender)
        return EMEA

    client = receiver(webhook_keys, tmp_path)
    call_id = new_id()
    body = envelope(call_notification(call_id, "established"))
    assert client.post("/api/calls", json=body, headers=signed(webhook_keys)).status_code == 202
    assert asked == []


def test_a_302_when_asked_for(webhook_keys: LocalGraphKeys, tmp_path: Path) -> None:
    @on.route_incoming
    def away() -> Redirect:
        return redirect_to(EMEA, status=302)

    client = receiver(webhook_keys, tmp_path)
    response = client.post("/api/calls", json=envelope(incoming_call(new_id())), headers=signed(webhook_keys))
    assert (response.status_code, response.headers["Location"]) == (302, EMEA)


@pytest.mark.parametrize(
    "answers",
    [
        [EMEA, "https://apac.bot.contoso.com/api/calls"],  # they disagree: no order decides
        ["http://emea.bot.contoso.com/api/calls"],  # not https
        [RuntimeError("routing table unavailable")],
        [42],
        ["https://me.bot.contoso.com/api/calls"],  # this instance itself (INSTANCE_CALLBACK_URL): a loop
    ],
)
def test_a_doubtful_route_keeps_the_call_here(webhook_keys: LocalGraphKeys, tmp_path: Path, answers: list[Any]) -> None:
    for answer in answers:

        @on.route_incoming
        def route(answer: Any = answer) -> Any:
            if isinstance(answer, Exception):
                raise answer
            return answer

    client = receiver(webhook_keys, tmp_path)
    call_id = new_id()
    response = client.post("/api/calls", json=envelope(incoming_call(call_id)), headers=signed(webhook_keys))
    assert response.status_code == 202
    assert client.get(f"/api/calls/{call_id}", headers=ADMIN).status_code == 200


def test_no_token_no_routing(webhook_keys: LocalGraphKeys, tmp_path: Path) -> None:
    asked: list[str] = []

    @on.route_incoming
    def away(sender: str) -> str:
        asked.append(sender)
        return EMEA

    client = receiver(webhook_keys, tmp_path)
    assert client.post("/api/calls", json=envelope(incoming_call(new_id()))).status_code == 401
    assert asked == []


def test_redirect_targets_are_checked() -> None:
    with pytest.raises(ValueError, match="https callback URL"):
        redirect_to("emea")
    with pytest.raises(ValueError, match="302 or 307"):
        redirect_to(EMEA, status=301)


def test_the_instance_callback_url_brings_the_call_back_to_this_instance(fake: FakeGraph, tmp_path: Path) -> None:
    """The shared CALLBACK_URL (a load balancer's) does not reach this test; the answer names this instance, and
    Graph's notifications about the call come straight back to it."""

    @on.call_state("incoming")
    def answer(actions: CallActions) -> None:
        actions.answer()

    port = free_port()
    fake.callback_url = instance = f"http://127.0.0.1:{port}/api/calls"  # where Graph rings the bot
    settings = {**fake.settings(), "CALLBACK_URL": "https://bot.contoso.com/api/calls"}
    app = create_app(
        {
            **settings,
            "INSTANCE_CALLBACK_URL": instance,
            "STORE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "OUTBOX_SWEEP_SECONDS": 0,
        }
    )
    served = Served(app, ADMIN_TOKEN, port)
    try:
        call = fake.ring()
        fake.settle()
        assert fake.sent("answer")[0].body["callbackUri"] == instance
        assert history_states(served.call(call.id)) == ["incoming", "establishing", "established"]
    finally:
        served.stop()
