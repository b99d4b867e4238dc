"""Several bots in one receiver, through the real endpoint with JWT verification on and against the fake Graph:
each bot posts to /api/calls/<app id> with tokens for its own app id, its calls are kept and listed apart,
its handlers hear only its calls, and its calls are acted on with its own credentials and callback URL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webhook import create_app, on
from webhook.actions import CallActions
from webhook.builders import envelope, incoming_call, new_id
from webhook.errors import ConfigError
from webhook.fakegraph import FakeGraph
from webhook.http import EXTENSION
from webhook.testing import LocalGraphKeys

from .conftest import ADMIN_TOKEN
from .support import Served, history_states, serve_bot

OTHER = "0b7e5c1d-2222-4333-8444-555566667777"
OTHER_SECRET = "the-other-bots-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def two_bots(fake: FakeGraph, tmp_path: Path) -> Iterator[Served]:
    fake.apps[OTHER] = OTHER_SECRET
    served = serve_bot(fake, tmp_path, ADMIN_TOKEN, APPS=f"{OTHER}={OTHER_SECRET}", KEEPALIVE_SECONDS="0.3")
    yield served
    served.stop()


def test_each_bot_answers_its_own_calls_with_its_own_credentials(fake: FakeGraph, two_bots: Served) -> None:
    heard: list[tuple[str, str]] = []

    @on.call_state("incoming", app=OTHER)
    def other_answers(call: Any, actions: CallActions) -> None:
        heard.append(("other", call.id))
        actions.answer()

    @on.call_state("incoming", app=fake.app_id)
    def first_answers(call: Any, actions: CallActions) -> None:
        heard.append(("first", call.id))
        actions.answer()

    theirs = fake.ring(app_id=OTHER, callback_url=f"{two_bots.url}/{OTHER}")
    mine = fake.ring()
    fake.settle()
    assert sorted(heard) == sorted([("other", theirs.id), ("first", mine.id)])
    answers = {r.call_id: r for r in fake.sent("answer")}
    # The fake answers 403 to a token of the wrong app: 202 means each bot acted with its own credentials.
    assert answers[theirs.id].status == answers[mine.id].status == 202
    assert answers[theirs.id].body["callbackUri"] == f"{two_bots.url}/{OTHER}"
    assert answers[mine.id].body["callbackUri"] == two_bots.url
    for call in (theirs, mine):
        assert history_states(two_bots.call(call.id)) == ["incoming", "establishing", "established"]
    assert two_bots.call(theirs.id)["appId"] == OTHER
    assert two_bots.call(mine.id)["appId"] == fake.app_id

    client = two_bots.app.test_client()
    listed = client.get(f"/api/calls?app={OTHER}", headers=ADMIN).get_json()
    assert [call["id"] for call in listed["calls"]] == [theirs.id]

    time.sleep(0.4)  # both calls are due a keepAlive: each goes with its own bot's token
    upkeep = two_bots.app.extensions[EXTENSION].sweeper.upkeep
    assert upkeep.keep_alive_due() == 2
    assert sorted((r.call_id, r.status) for r in fake.sent("keepAlive")) == sorted([(theirs.id, 200), (mine.id, 200)])


def test_a_token_for_one_bot_does_not_open_another(fake: FakeGraph, two_bots: Served) -> None:
    client = two_bots.app.test_client()
    body = envelope(incoming_call(new_id()))
    first_bots_token = {"Authorization": f"Bearer {fake.keys.token(aud=fake.app_id, tid=fake.tenant_id)}"}
    refused = client.post(f"/api/calls/{OTHER}", json=body, headers=first_bots_token)
    assert refused.status_code == 401
    assert refused.get_json()["details"]["reason"] == "wrong_audience"
    unknown = client.post(f"/api/calls/{new_id()}", json=body, headers=first_bots_token)
    assert unknown.status_code == 404
    assert "WEBHOOK_APPS" in unknown.get_json()["message"]
    assert client.post(f"/api/calls/{fake.app_id}", json=body, headers=first_bots_token).status_code == 202


def test_without_app_id_the_bare_path_is_closed(webhook_keys: LocalGraphKeys, tmp_path: Path) -> None:
    app = create_app(
        {
            "APPS": f"{OTHER}={OTHER_SECRET}",
            "OPENID_CONFIG_URL": webhook_keys.config_url,
            "STORE_URL": f"sqlite:///{tmp_path}/calls.sqlite3",
        }
    )
    client = app.test_client()
    body = envelope(incoming_call(new_id()))
    signed = {"Authorization": f"Bearer {webhook_keys.token(aud=OTHER)}"}
    assert client.post("/api/calls", json=body, headers=signed).status_code == 404
    assert client.post(f"/api/calls/{OTHER}", json=body, headers=signed).status_code == 202


@pytest.mark.parametrize(
    "value",
    ["just-an-id", "=secret", f"{OTHER}=a,{OTHER}=b", "a/b=secret"],
    ids=["no secret", "no id", "twice", "slash"],
)
def test_the_apps_setting_is_checked(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="must list <app id>=<client secret> pairs"):
        create_app({"AUTH": "disabled", "STORE_URL": f"sqlite:///{tmp_path}/c.sqlite3", "APPS": value})


def test_the_apps_secrets_are_masked(tmp_path: Path) -> None:
    app = create_app(
        {"AUTH": "disabled", "STORE_URL": f"sqlite:///{tmp_path}/c.sqlite3", "APPS": f"{OTHER}={OTHER_SECRET}"}
    )
    assert OTHER_SECRET not in str(app.extensions[EXTENSION].settings.masked())
