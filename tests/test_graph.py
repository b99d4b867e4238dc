"""The Graph client and handlers' ``actions``, against the fake Graph over https (msal only talks to https
authorities), through a real receiver on a real port with JWT verification on."""

from __future__ import annotations

import time
from typing import Any

import pytest

from webhook import on
from webhook.actions import CallActions, identity
from webhook.errors import CallGone, GraphError, GraphForbidden, GraphNotConfigured, GraphThrottled, GraphUnreachable
from webhook.fakegraph import FakeGraph
from webhook.graph import GraphClient, actions_for
from webhook.http import EXTENSION
from webhook.operation import MediaPrompt

from .conftest import ADMIN_TOKEN
from .support import Served, history_states


def client(fake: FakeGraph, **options: Any) -> GraphClient:
    settings = {
        "app_id": fake.app_id,
        "client_secret": fake.client_secret,
        "graph_url": fake.graph_url,
        "authority_url": fake.authority_url,
        "ca_bundle": fake.ca_bundle or "",
        **options,
    }
    return GraphClient(**settings)


def actions(fake: FakeGraph, call_id: str, **options: Any) -> CallActions:
    return CallActions(client(fake, **options), call_id, fake.tenant_id, fake.callback_url)


def test_a_bot_of_three_handlers_answers_greets_and_hangs_up(fake: FakeGraph, bot: Served) -> None:
    results: list[str] = []

    @on.call_state("incoming")
    def answer(actions: CallActions) -> None:
        actions.answer(callback_uri=fake.callback_url)

    @on.media_active
    def greet(actions: CallActions) -> None:
        operation = actions.play_prompt("https://bot.contoso.com/welcome.wav", client_context="welcome")
        results.append(f"{operation.type} {operation.status} {operation.client_context}")

    @on.operation("playPrompt")
    def done(actions: CallActions, succeeded: bool) -> None:
        results.append(f"played: {succeeded}")
        actions.hang_up()

    call = fake.ring()
    fake.settle()
    stored = bot.call(call.id)
    assert history_states(stored) == [
        "incoming",
        "establishing",
        "established",
        "terminating",
        "terminated",
    ]
    assert stored["endReason"]
    assert results == ["playPrompt running welcome", "played: True"]
    sent = [r for r in fake.requests if r.action != "token"]
    assert [r.action for r in sent] == ["answer", "playPrompt", "delete"]
    assert len({r.headers["client-request-id"] for r in sent}) == 3
    assert len(fake.sent("token")) == 1  # one app token for the tenant, reused (msal's cache)


def test_every_action_through_the_client(fake: FakeGraph, bot: Served) -> None:
    call = fake.ring()
    act = actions(fake, call.id)
    act.answer()
    fake.settle()
    assert act.get()["state"] == "established"
    assert len(act.participants()) == 2
    assert act.play_prompt(MediaPrompt("https://x/a.wav", "a"), "https://x/b.wav").type == "playPrompt"
    assert act.record_response(max_record_duration=10).status == "running"
    assert act.subscribe_to_tone().status == "completed"
    assert act.send_dtmf_tones(["tone1", "pound"]).status == "running"
    assert act.mute().status == "completed" and act.unmute().status == "completed"
    assert act.update_recording_status("recording").status == "completed"
    assert act.invite(identity(user="u1", name="Carol")).type == "inviteParticipants"
    act.keep_alive()
    assert act.cancel_media_processing().type == "cancelMediaProcessing"
    act.transfer(identity(user="u2"))
    fake.settle()
    assert bot.call(call.id)["state"] == "terminated"
    with pytest.raises(CallGone) as gone:
        act.keep_alive()
    assert gone.value.status == 404 and gone.value.graph_code == "8522" and gone.value.request_id
    rejected, redirected = fake.ring(), fake.ring()
    actions(fake, rejected.id).reject("busy")
    actions(fake, redirected.id).redirect(identity(phone="+15550100"), timeout=20)
    fake.settle()
    assert bot.call(rejected.id)["state"] == bot.call(redirected.id)["state"] == "terminated"


def test_a_throttled_request_is_retried_once_as_graph_asks_and_succeeds(fake: FakeGraph, bot: Served) -> None:
    call = fake.ring()
    fake.fail_next("answer", 429, retry_after=0.2)
    actions(fake, call.id).answer()
    attempts = fake.sent("answer")
    assert [r.status for r in attempts] == [429, 202]
    assert attempts[0].headers["client-request-id"] == attempts[1].headers["client-request-id"]
    fake.settle()
    assert bot.call(call.id)["state"] == "established"


def test_no_retry_without_retry_after_nor_past_the_deadline(fake: FakeGraph, bot: Served) -> None:
    call = fake.ring()
    act = actions(fake, call.id)
    fake.fail_next("answer", 503)
    with pytest.raises(GraphThrottled):
        act.answer()
    fake.fail_next("answer", 429, retry_after=30)  # beyond the 15 s an answer has
    with pytest.raises(GraphThrottled) as late:
        act.answer()
    assert late.value.retry_after == 30
    fake.fail_next("answer", 500)
    with pytest.raises(GraphError) as failed:
        act.answer()
    assert failed.value.status == 500 and not isinstance(failed.value, (GraphThrottled, CallGone))
    assert [r.status for r in fake.sent("answer")] == [503, 429, 500]  # each sent once


def test_forbidden_names_the_permission(fake: FakeGraph, bot: Served) -> None:
    call = fake.ring()
    act = actions(fake, call.id)
    act.answer()
    fake.settle()
    message = "Application does not have permission Calls.AccessMedia.All to perform this action."
    fake.fail_next("subscribeToTone", 403, message=message)
    with pytest.raises(GraphForbidden) as refused:
        act.subscribe_to_tone()
    assert refused.value.permission == "Calls.AccessMedia.All"


def test_a_post_is_never_sent_twice_after_a_dropped_connection(fake: FakeGraph, bot: Served) -> None:
    call = fake.ring()
    act = actions(fake, call.id)
    act.answer()
    fake.settle()
    fake.drop_connection_next("playPrompt")
    with pytest.raises(GraphUnreachable) as dropped:
        act.play_prompt("https://x/hi.wav")
    assert dropped.value.sent is True and "not sent again" in dropped.value.message
    assert len(fake.sent("playPrompt")) == 1
    fake.settle()
    assert bot.call(call.id)["operations"][0]["status"] == "completed"  # Graph did play it


def test_redirects_keep_the_method_or_are_refused(fake: FakeGraph, bot: Served) -> None:
    call = fake.ring()
    act = actions(fake, call.id)
    fake.fail_next("answer", 307)
    act.answer()
    assert [(r.method, r.status) for r in fake.sent("answer")] == [("POST", 307), ("POST", 202)]
    fake.settle()
    fake.fail_next("keepAlive", 302)
    with pytest.raises(GraphError, match="would turn the POST into a GET"):
        act.keep_alive()
    assert [r.method for r in fake.sent("keepAlive")] == ["POST"]


def test_tokens_per_tenant_and_errors_that_say_what_to_set(fake: FakeGraph, bot: Served) -> None:
    graph = client(fake)
    assert graph.token("tenant-a") == graph.token("tenant-a")
    graph.token("tenant-b")
    assert len(fake.sent("token")) == 2
    with pytest.raises(GraphError, match="invalid_client"):
        client(fake, client_secret="wrong").token("tenant-a")
    with pytest.raises(GraphNotConfigured, match="WEBHOOK_CLIENT_SECRET"):
        client(fake, client_secret="").token("tenant-a")
    with pytest.raises(GraphNotConfigured, match="WEBHOOK_CALLBACK_URL"):
        CallActions(client(fake), "call", fake.tenant_id).answer()
    with pytest.raises(GraphError, match="cannot use the authority"):
        client(fake, authority_url="http://127.0.0.1:1").token("tenant-c")


def test_actions_for_a_call_outside_a_handler(fake: FakeGraph, bot: Served) -> None:
    call = fake.ring()
    with bot.app.app_context():
        act = actions_for(call.id, fake.tenant_id)
        assert act.callback_url == fake.callback_url  # WEBHOOK_CALLBACK_URL
        act.reject()
    fake.settle()
    assert bot.call(call.id)["state"] == "terminated"


def test_outbound_metrics(fake: FakeGraph, bot: Served) -> None:
    call = fake.ring()
    fake.fail_next("answer", 429, retry_after=0.05)
    actions(fake, call.id).answer()
    exposition = (
        bot.app.test_client().get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).get_data(as_text=True)
    )
    assert 'comms_webhook_graph_requests_total{action="answer",status="429"}' in exposition
    assert 'comms_webhook_graph_retries_total{action="answer"}' in exposition
    assert "comms_webhook_graph_request_duration_seconds_bucket" in exposition
    assert bot.app.extensions[EXTENSION].graph is not None


def test_a_handler_asking_for_actions_where_none_can_be_given_is_refused() -> None:
    with pytest.raises(TypeError, match="takes 'actions'"):

        @on.notification  # sent before any call exists: nothing to act on
        def no_call(actions: Any) -> None: ...

    @on.stale
    def fine(call: Any, actions: Any) -> None: ...


def test_a_deferred_handler_waits_for_its_prompt_and_for_a_state_through_the_store(
    fake: FakeGraph, bot: Served
) -> None:
    seen: list[str] = []

    @on.call_state("incoming", deferred=True)
    def answer_then_wait(actions: CallActions) -> None:
        actions.answer()
        seen.append(f"now {actions.wait_for_state('established', timeout=10).state}")

    @on.media_active(deferred=True)
    def play_and_wait(actions: CallActions) -> None:
        started = actions.play_prompt("https://bot.contoso.com/menu.wav", client_context="menu")
        finished = started.wait(timeout=10)
        seen.append(f"{finished.type} {finished.status} {finished.completion_reason}")
        actions.hang_up()

    fake.operation_seconds["playPrompt"] = 0.5
    call = fake.ring()
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        fake.advance(0.1)  # the fake's clock runs on while the handlers wait: the prompt plays for 0.5 s of it
        fake.settle()
        time.sleep(0.02)
    assert seen == ["now established", "playPrompt completed completedSuccessfully"]
    # The second handler hangs up after it reports: let it finish before Graph's answer to the hang-up is awaited.
    bot.app.extensions[EXTENSION].delivery.drain()
    fake.settle()
    assert bot.call(call.id)["state"] == "terminated"


def test_waiting_ends_with_a_clear_timeout(fake: FakeGraph, bot: Served) -> None:
    call = fake.ring()
    with bot.app.app_context():
        act = actions_for(call.id, fake.tenant_id)
        with pytest.raises(TimeoutError, match=r"was not established within 0.2s \(it is incoming\)"):
            act.wait_for_state("established", timeout=0.2)
        act.answer()
        fake.settle()
        fake.operation_seconds["playPrompt"] = 60
        with pytest.raises(TimeoutError, match="no result of playPrompt"):
            act.play_prompt("https://x/long.wav").wait(timeout=0.2)
