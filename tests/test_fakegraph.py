"""The fake Graph, against a real receiver on a real port with JWT verification on: whole calls driven by the bot's
own handlers, every action's answer, the faults and the clock."""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from webhook import create_app, on
from webhook.fakegraph import QUIRKS, FakeGraph
from webhook.http import EXTENSION

from .conftest import ADMIN_TOKEN
from .support import Served, free_port, history_states

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SCOPE = "https://graph.microsoft.com/.default"
AUDIO = {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as graph:
        yield graph


class Graph:
    """What a bot's own code would do with requests: an app token from the fake's authority, then the calls API."""

    def __init__(self, fake: FakeGraph, tenant: str | None = None) -> None:
        self.fake = fake
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {fake.app_token(tenant)}"

    def post(self, call_id: str, action: str, body: dict[str, Any] | None = None) -> requests.Response:
        return self.session.post(f"{self.fake.graph_url}/communications/calls/{call_id}/{action}", json=body, timeout=5)

    def delete(self, call_id: str) -> requests.Response:
        return self.session.delete(f"{self.fake.graph_url}/communications/calls/{call_id}", timeout=5)

    def get(self, call_id: str, rest: str = "") -> requests.Response:
        return self.session.get(f"{self.fake.graph_url}/communications/calls/{call_id}{rest}", timeout=5)

    def answer(self, call_id: str) -> requests.Response:
        body = {"callbackUri": self.fake.callback_url, "acceptedModalities": ["audio"], "mediaConfig": AUDIO}
        return self.post(call_id, "answer", body)


def prompt(uri: str = "https://bot.contoso.com/welcome.wav", context: str = "greeting") -> dict[str, Any]:
    return {
        "prompts": [{"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": {"uri": uri}}],
        "clientContext": context,
    }


def test_a_whole_call_answered_greeted_and_hung_up_by_the_bots_own_handlers(fake: FakeGraph, bot: Served) -> None:
    graph = Graph(fake)
    heard: list[str] = []

    @on.call_state("incoming")
    def answer(call: Any) -> None:
        assert graph.answer(call.id).status_code == 202

    @on.media_active
    def greet(call: Any) -> None:
        heard.append("media active")
        played = graph.post(call.id, "playPrompt", prompt())
        assert played.status_code == 200 and played.headers["Location"].endswith(played.json()["id"])
        assert played.json()["status"] == "running"

    @on.operation("playPrompt")
    def done(call: Any, succeeded: bool, client_context: str) -> None:
        heard.append(f"prompt {client_context} succeeded={succeeded}")
        assert graph.delete(call.id).status_code == 204

    @on.call_state("terminated")
    def ended(call: Any, end_reason: str) -> None:
        heard.append(f"ended: {end_reason}")

    started = time.monotonic()
    call = fake.ring()
    fake.settle()
    elapsed = time.monotonic() - started
    stored = bot.call(call.id)
    assert history_states(stored) == [
        "incoming",
        "establishing",
        "established",
        "terminating",
        "terminated",
    ]
    assert stored["end"]["resultInfo"]["subcode"] == 7000
    assert heard[:2] == ["media active", "prompt greeting succeeded=True"]
    assert heard[2].startswith("ended: ")
    assert fake.calls[call.id].history == ["incoming", "establishing", "established", "terminating", "terminated"]
    assert [r.action for r in fake.requests if r.action != "token"] == ["answer", "playPrompt", "delete"]
    assert all(d.status == 202 for d in fake.deliveries)
    assert elapsed < 5, elapsed  # a second or so: the figure is in the closing note, this only catches a hang


def test_tokens_are_checked_as_microsoft_does(fake: FakeGraph, bot: Served) -> None:
    wrong = requests.post(
        f"{fake.authority_url}/{fake.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": fake.app_id, "client_secret": "nope", "scope": SCOPE},
        timeout=5,
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    discovery = requests.get(f"{fake.authority_url}/{fake.tenant_id}/v2.0/.well-known/openid-configuration", timeout=5)
    assert discovery.json()["token_endpoint"] == f"{fake.authority_url}/{fake.tenant_id}/oauth2/v2.0/token"
    call = fake.ring()
    anonymous = requests.post(f"{fake.graph_url}/communications/calls/{call.id}/keepAlive", json={}, timeout=5)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"
    other_tenant = Graph(fake, tenant="99999999-0000-0000-0000-000000000000").post(call.id, "keepAlive", {})
    assert other_tenant.status_code == 403
    assert Graph(fake).post(call.id, "keepAlive", {}).status_code == 200


ACTIONS: list[tuple[str, dict[str, Any], int]] = [
    ("playPrompt", prompt(), 200),
    ("recordResponse", {"bargeInAllowed": True, "maxRecordDurationInSeconds": 10, "clientContext": "r"}, 200),
    ("subscribeToTone", {"clientContext": "t"}, 200),
    ("mute", {"clientContext": "m"}, 200),
    ("unmute", {"clientContext": "u"}, 200),
    ("cancelMediaProcessing", {"clientContext": "c"}, 200),
    ("updateRecordingStatus", {"status": "recording", "clientContext": "s"}, 200),
    ("keepAlive", {}, 200),
    ("participants/invite", {"participants": [{"identity": {"user": {"id": "u1", "displayName": "Carol"}}}]}, 200),
    ("transfer", {"transferTarget": {"identity": {"user": {"id": "u2"}}}}, 202),
]


@pytest.mark.parametrize(("action", "body", "status"), ACTIONS, ids=[a for a, _, _ in ACTIONS])
def test_each_action_answers_as_graph_does_then_404_8522_once_the_call_ended(
    fake: FakeGraph, bot: Served, action: str, body: dict[str, Any], status: int
) -> None:
    graph = Graph(fake)
    call = fake.ring()
    assert graph.answer(call.id).status_code == 202
    fake.settle()
    answered = graph.post(call.id, action, body)
    assert answered.status_code == status, answered.text
    if action in ("playPrompt", "recordResponse", "participants/invite"):
        assert answered.json()["status"] == "running" and "Location" in answered.headers
    fake.settle()
    if action in ("mute", "unmute"):
        (bot_leg,) = [p for p in bot.call(call.id)["participants"] if "application" in p["info"]["identity"]]
        assert bot_leg["isMuted"] is (action == "mute")
    if action != "transfer":
        assert graph.delete(call.id).status_code == 204
    fake.settle()
    assert bot.call(call.id)["state"] == "terminated"
    gone = graph.post(call.id, action, body)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "8522"
    assert graph.get(call.id).status_code == 404
    assert graph.delete(call.id).status_code == 404


def test_reject_and_redirect_end_the_incoming_call(fake: FakeGraph, bot: Served) -> None:
    graph = Graph(fake)
    rejected, redirected = fake.ring(), fake.ring()
    assert graph.post(rejected.id, "reject", {"reason": "busy"}).status_code == 202
    targets = {"targets": [{"identity": {"user": {"id": "u3"}}}], "timeout": 30}
    assert graph.post(redirected.id, "redirect", targets).status_code == 202
    fake.settle()
    assert bot.call(rejected.id)["state"] == "terminated"
    assert bot.call(redirected.id)["state"] == "terminated"
    assert graph.answer(rejected.id).status_code == 404


def test_requests_are_checked_as_graph_checks_them(fake: FakeGraph, bot: Served) -> None:
    graph = Graph(fake)
    call = fake.ring()
    missing = graph.post(call.id, "answer", {"acceptedModalities": ["audio"]})
    assert missing.status_code == 400
    error = missing.json()["error"]
    assert error["code"] == "BadRequest" and "callbackUri" in error["message"] and "mediaConfig" in error["message"]
    assert "request-id" in error["innerError"]
    assert graph.post(call.id, "playPrompt", prompt()).status_code == 400  # not established yet
    assert graph.answer(call.id).status_code == 202
    assert graph.answer(call.id).status_code == 400  # answered already
    assert graph.post(call.id, "playPrompt", {"prompts": [{"mediaInfo": {}}]}).status_code == 400
    assert graph.post(call.id, "noSuchAction", {}).status_code == 400


def test_a_failed_transfer_goes_back_to_established(fake: FakeGraph, bot: Served) -> None:
    graph = Graph(fake)
    call = fake.ring()
    graph.answer(call.id)
    fake.settle()
    assert graph.post(call.id, "transfer", {"transferTarget": {"endpointType": "fail"}}).status_code == 202
    fake.settle()
    stored = bot.call(call.id)
    assert history_states(stored)[-2:] == ["transferring", "established"]


def test_a_group_call_whose_roster_changes(fake: FakeGraph, bot: Served) -> None:
    joined: list[str] = []
    left: list[str] = []

    @on.joined
    def hello(participants: list[Any]) -> None:
        joined.extend(p["info"]["identity"].get("user", {}).get("displayName", "bot") for p in participants)

    @on.left
    def bye(participants: list[Any]) -> None:
        left.extend(p["info"]["identity"]["user"]["displayName"] for p in participants)

    call = fake.meeting(participants=("Alice", "Bob"))
    carol = fake.join(call, "Carol")
    fake.leave(call, carol)
    bob = next(
        pid for pid, p in call.participants.items() if p["info"]["identity"].get("user", {}).get("displayName") == "Bob"
    )
    fake.mute_participant(call, bob)
    graph = Graph(fake)
    assert graph.post(call.id, "mute", {"clientContext": "m"}).status_code == 200
    fake.settle()
    assert sorted(joined) == ["Alice", "Bob", "Carol", "bot"]
    assert left == ["Carol"]
    roster = {p["id"]: p for p in bot.call(call.id)["participants"]}
    assert roster[bob]["isMuted"] is True
    assert all(p["isMuted"] for p in roster.values() if "application" in p["info"]["identity"])
    assert len(graph.get(call.id, "/participants").json()["value"]) == 3


def test_tones_pressed_by_the_caller(fake: FakeGraph, bot: Served) -> None:
    tones: list[tuple[str, int]] = []

    @on.tone
    def heard(tone: str, sequence_id: int) -> None:
        tones.append((tone, sequence_id))

    graph = Graph(fake)
    call = fake.ring()
    graph.answer(call.id)
    fake.settle()
    for key in "5#":
        fake.press(call, key)
    assert tones == [("tone5", 1), ("tonepound", 2)]


def test_a_cancelled_operation_fails_with_8508(fake: FakeGraph, bot: Served) -> None:
    outcomes: list[tuple[str, bool]] = []

    @on.operation
    def result(status: str, succeeded: bool) -> None:
        outcomes.append((status, succeeded))

    fake.operation_seconds["playPrompt"] = 60
    graph = Graph(fake)
    call = fake.ring()
    graph.answer(call.id)
    fake.settle()
    assert graph.post(call.id, "playPrompt", prompt()).status_code == 200
    assert graph.post(call.id, "cancelMediaProcessing", {"clientContext": "c"}).status_code == 200
    fake.settle()
    assert outcomes == [("failed", False)]
    (operation,) = bot.call(call.id)["operations"]
    assert operation["resultInfo"]["subcode"] == 8508


def test_injected_failures_process_nothing(fake: FakeGraph, bot: Served) -> None:
    graph = Graph(fake)
    call = fake.ring()
    fake.fail_next("answer", 429, retry_after=2)
    throttled = graph.answer(call.id)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert fake.calls[call.id].state == "incoming"  # nothing was done
    fake.fail_next("answer", 503)
    assert graph.answer(call.id).status_code == 503
    assert graph.answer(call.id).status_code == 202
    fake.fail_next("token", 503, retry_after=1)
    with pytest.raises(urllib.error.HTTPError) as refused:
        Graph(fake)
    assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "1"
    Graph(fake)


def test_notification_faults_drop_duplicate_reorder_and_silence(fake: FakeGraph, bot: Served) -> None:
    graph = Graph(fake)
    dropped = fake.ring()
    fake.drop_next()  # establishing never arrives
    graph.answer(dropped.id)
    fake.settle()
    assert history_states(bot.call(dropped.id)) == ["incoming", "established"]

    doubled = fake.ring()
    fake.duplicate_next(3)
    graph.answer(doubled.id)
    fake.settle()
    assert bot.call(doubled.id)["duplicates"] >= 3

    swapped = fake.ring()
    fake.reorder_next()  # established overtakes establishing: our receiver keeps the later state
    graph.answer(swapped.id)
    fake.settle()
    assert bot.call(swapped.id)["state"] == "established"

    silent = fake.ring()
    graph.answer(silent.id)
    fake.settle()
    fake.never_send_terminated()
    assert graph.delete(silent.id).status_code == 204
    fake.settle()
    assert bot.call(silent.id)["state"] == "terminating"  # what users see when Graph goes quiet
    assert fake.calls[silent.id].state == "terminated"

    fake.never_send_terminated(False)
    late = fake.ring()
    fake.delay_notifications(0.3)
    started = time.monotonic()
    graph.answer(late.id)
    fake.settle()
    assert time.monotonic() - started >= 0.9  # three notifications, each late
    fake.delay_notifications(0)


def test_the_clock_ends_unanswered_calls_and_calls_never_kept_alive(fake: FakeGraph, bot: Served) -> None:
    graph = Graph(fake)
    unanswered = fake.ring()
    fake.advance(14.9)
    assert fake.calls[unanswered.id].state == "incoming"
    fake.advance(0.2)
    fake.settle()
    stored = bot.call(unanswered.id)
    assert stored["state"] == "terminated" and stored["end"]["resultInfo"]["subcode"] == 1106
    assert graph.answer(unanswered.id).status_code == 404

    kept, forgotten = fake.ring(), fake.ring()
    for call in (kept, forgotten):
        graph.answer(call.id)
    fake.settle()
    fake.advance(30 * 60)
    assert graph.post(kept.id, "keepAlive", {}).status_code == 200
    fake.advance(16 * 60)
    fake.settle()
    assert bot.call(forgotten.id)["end"]["resultInfo"] == {
        "@odata.type": "#microsoft.graph.resultInfo",
        "code": 408,
        "subcode": 8537,
        "message": "Keep Alive timeout",
    }
    assert bot.call(kept.id)["state"] == "established"


def test_graphs_quirks_switched_on_are_all_accepted(tmp_path: Path) -> None:
    with FakeGraph(quirks=QUIRKS) as fake:
        app = create_app(
            {
                "APP_ID": fake.app_id,
                "OPENID_CONFIG_URL": fake.config_url,
                "STORE_URL": f"sqlite:///{tmp_path / 'quirks.sqlite3'}",
                "ADMIN_TOKEN": ADMIN_TOKEN,
            }
        )
        served = Served(app, ADMIN_TOKEN)
        fake.callback_url = served.url
        graph = Graph(fake)
        call = fake.ring()
        graph.answer(call.id)
        fake.settle()
        assert graph.delete(call.id).status_code == 204
        fake.settle()
        served.server.shutdown()
    body = fake.deliveries[-1].body["value"][0]
    assert body["resource"].startswith("/app/calls/") and body["resourceUrl"].split("/")[3].isupper()
    assert body["resourceData"]["resultInfo"]["code"] == "200" and "undocumentedField" in body
    assert {d.status for d in fake.deliveries} == {202}
    stored = app.extensions[EXTENSION].store.get(call.id)
    assert stored.state == "terminated" and stored.data["undocumentedField"] == [1, 2, 3]


def test_unknown_quirks_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown quirks"):
        FakeGraph(quirks=("nonsense",))


def test_comms_webhook_fake_graph_drives_a_receiver_from_its_prompt(tmp_path: Path) -> None:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/api/calls"
    script = Path(sys.executable).with_name("comms-webhook")
    process = subprocess.Popen(
        [str(script), "fake-graph", "--callback", callback],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    settings = {}
    for line in process.stdout:
        if line.startswith("  export WEBHOOK_"):
            name, _, value = line.strip().removeprefix("export WEBHOOK_").partition("=")
            settings[name] = shlex.split(value)[0]
        if line.startswith("CALL is a call id"):  # the end of the command list
            break
    app = create_app(
        {
            "APP_ID": settings["APP_ID"],
            "OPENID_CONFIG_URL": settings["OPENID_CONFIG_URL"],
            "STORE_URL": f"sqlite:///{tmp_path / 'manual.sqlite3'}",
            "ADMIN_TOKEN": ADMIN_TOKEN,
        }
    )
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        process.stdin.write("ring Bob\n")
        process.stdin.flush()
        ringing = process.stdout.readline()
        assert ringing.startswith("ringing: call ")
        call_id = ringing.split()[-1]
        process.stdin.write("advance 16\ncalls\nquit\n")
        process.stdin.flush()
        rest = process.communicate(timeout=30)[0]
    finally:
        server.shutdown()
    assert "clock at" in rest and f"{call_id}  terminated" in rest
    stored = app.test_client().get(f"/api/calls/{call_id}", headers=ADMIN).get_json()
    assert stored["state"] == "terminated" and stored["data"]["source"]["identity"]["user"]["displayName"] == "Bob"
    assert settings["GRAPH_URL"].endswith("/v1.0")
