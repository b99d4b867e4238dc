"""The answer-deadline guard, through a real receiver on a real port with JWT verification on, against the fake
Graph: an incoming call no handler replied to in time is rejected as busy, redirected, or only logged; a
handler's reply in time keeps the guard away, and a handler replying after the guard is told so."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook import AlreadyReplied, on
from webhook.actions import CallActions
from webhook.answering import claim_reply, guard_delay, is_policy_recording, release_reply
from webhook.errors import ConfigError
from webhook.fakegraph import FakeGraph
from webhook.http import EXTENSION
from webhook.model import Call

from .conftest import ADMIN_TOKEN
from .support import DOCS, Served, history_states, load_json, metric_value, serve_bot, until

DEADLINE = 0.4


@pytest.fixture
def guarded(fake: FakeGraph, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    """A receiver whose guard acts DEADLINE seconds after a call comes in, with the fallback the test names
    (``@pytest.mark.parametrize("guarded", [...], indirect=True)``), reject by default."""
    settings = {"ANSWER_DEADLINE_SECONDS": DEADLINE, **getattr(request, "param", {"ANSWER_FALLBACK": "reject"})}
    served = serve_bot(fake, tmp_path, ADMIN_TOKEN, **settings)
    yield served
    served.stop()


def test_an_unanswered_call_is_rejected_as_busy_at_the_deadline(fake: FakeGraph, guarded: Served) -> None:
    before = metric_value("answer_deadlines_total", fallback="reject", outcome="sent")
    started = time.monotonic()
    call = fake.ring(source="Nobody answers")
    rejected = until(lambda: fake.sent("reject"), "the guard's reject")
    assert time.monotonic() - started >= DEADLINE
    assert rejected[0].body == {"reason": "busy"}
    assert rejected[0].status == 202
    fake.settle()
    stored = guarded.call(call.id)
    assert stored["state"] == "terminated"  # Graph's deleted notification after the reject
    assert stored["reply"]["action"] == "reject" and stored["reply"]["by"] == "guard"
    assert history_states(stored) == ["incoming", "terminated"]
    assert metric_value("answer_deadlines_total", fallback="reject", outcome="sent") == before + 1
    assert not fake.sent("answer")


def test_a_call_answered_in_time_is_left_alone(fake: FakeGraph, guarded: Served) -> None:
    @on.call_state("incoming")
    def answer(actions: CallActions) -> None:
        actions.answer()

    call = fake.ring()
    fake.settle()
    time.sleep(DEADLINE * 2)
    assert [r.action for r in fake.requests if r.call_id == call.id] == ["answer"]
    stored = guarded.call(call.id)
    assert stored["state"] == "established"
    assert stored["reply"]["action"] == "answer" and stored["reply"]["by"] == "handler"
    assert guarded.app.extensions[EXTENSION].receiver.guard.pending() == 0


def test_the_mark_is_what_stops_the_guard_not_graphs_answer(fake: FakeGraph, guarded: Served) -> None:
    """A call a handler answered, whose establishing Graph has not sent yet, is not rejected behind its back."""

    @on.call_state("incoming")
    def answer(actions: CallActions) -> None:
        fake.drop_next(3)  # Graph's establishing and established never come: the call stays incoming here
        actions.answer()

    call = fake.ring()
    time.sleep(DEADLINE * 2)
    assert [r.action for r in fake.requests if r.call_id == call.id] == ["answer"]
    assert guarded.call(call.id)["state"] == "incoming"


def test_a_handler_replying_after_the_guard_is_refused_and_sends_nothing(fake: FakeGraph, guarded: Served) -> None:
    outcome: list[str] = []

    @on.call_state("incoming", deferred=True)
    def too_slow(actions: CallActions) -> None:
        time.sleep(DEADLINE * 2)
        try:
            actions.answer()
        except AlreadyReplied as exc:
            outcome.append(f"{exc.reply['action']} by {exc.reply['by']}: {exc.message}")

    fake.ring()
    until(lambda: outcome, "the late handler's answer")
    assert outcome[0].startswith("reject by guard: ")
    assert "WEBHOOK_ANSWER_DEADLINE_SECONDS" in outcome[0]
    assert not fake.sent("answer")
    assert len(fake.sent("reject")) == 1


def test_a_failed_answer_gives_the_call_back_to_the_guard(fake: FakeGraph, guarded: Served) -> None:
    errors: list[int] = []

    @on.call_state("incoming")
    def answer(actions: CallActions) -> None:
        try:
            actions.answer()
        except Exception as exc:
            errors.append(getattr(exc, "status", 0))

    fake.fail_next("answer", 500)
    call = fake.ring()
    until(lambda: fake.sent("reject"), "the guard's reject")
    assert errors == [500]
    fake.settle()
    assert guarded.call(call.id)["reply"]["by"] == "guard"


@pytest.mark.parametrize(
    "guarded", [{"ANSWER_FALLBACK": "redirect", "ANSWER_FALLBACK_TARGET": "phone:+14255550100"}], indirect=True
)
def test_the_redirect_fallback_sends_the_call_to_the_target(fake: FakeGraph, guarded: Served) -> None:
    call = fake.ring()
    redirected = until(lambda: fake.sent("redirect"), "the guard's redirect")
    assert redirected[0].body["targets"][0]["identity"]["phone"]["id"] == "+14255550100"
    fake.settle()
    assert guarded.call(call.id)["reply"]["action"] == "redirect"


@pytest.mark.parametrize("guarded", [{}], indirect=True)
def test_by_default_the_guard_only_logs_and_counts(
    fake: FakeGraph, guarded: Served, caplog: pytest.LogCaptureFixture
) -> None:
    before = metric_value("answer_deadlines_total", fallback="none", outcome="logged")
    caplog.set_level("WARNING", logger="webhook.answer_guard")
    call = fake.ring()
    until(lambda: metric_value("answer_deadlines_total", fallback="none", outcome="logged") == before + 1, "count")
    assert f"call {call.id}: no handler replied within {DEADLINE:g}s" in caplog.text
    assert [r.action for r in fake.requests if r.call_id == call.id] == []
    stored = guarded.call(call.id)
    assert stored["state"] == "incoming" and stored["reply"] is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ANSWER_FALLBACK": "reject"}, "ANSWER_FALLBACK=reject acts on calls through Graph"),
        ({"ANSWER_FALLBACK": "redirect"}, "ANSWER_FALLBACK=redirect needs WEBHOOK_ANSWER_FALLBACK_TARGET"),
        ({"ANSWER_FALLBACK_TARGET": "bob"}, "must name a party as user:<object id>"),
        ({"ANSWER_FALLBACK_TARGET": "phone:555"}, r"\+<country code><number>"),
        ({"ANSWER_DEADLINE_SECONDS": "15"}, "must be at most 14 .Graph drops a call not answered within 15 s"),
        ({"ANSWER_FALLBACK": "hangup"}, "must be one of none, reject, redirect"),
    ],
)
def test_a_fallback_that_cannot_be_carried_out_stops_start_up(
    store_url: str, settings: dict[str, str], message: str
) -> None:
    from webhook import create_app

    with pytest.raises(ConfigError, match=message):
        create_app({"AUTH": "disabled", "STORE_URL": store_url, **settings})


@pytest.mark.payloads
@pytest.mark.parametrize("guarded", [{"ANSWER_FALLBACK": "reject", "ANSWER_DEADLINE_SECONDS": "3"}], indirect=True)
def test_the_documented_policy_recording_call_is_guarded_within_its_five_seconds(
    fake: FakeGraph, guarded: Served
) -> None:
    """Microsoft's policy-recording incoming call (from "Answer call"), signed as Graph signs it: the guard acts
    at a third of the deadline (Graph gives it 5 s of 15). The fake Graph never placed that call, so its reject
    is answered 404 and counted as failed: what is checked here is when it went."""
    body = load_json(DOCS / "incoming-call-policy-recording-created.json")
    token = fake.keys.token(aud=fake.app_id, tid=body["value"][0]["resourceData"]["tenantId"])
    client = guarded.app.test_client()
    started = time.monotonic()
    assert client.post("/api/calls", json=body, headers={"Authorization": f"Bearer {token}"}).status_code == 202
    (rejected,) = until(lambda: fake.sent("reject"), "the guard's reject")
    assert 1.0 <= time.monotonic() - started < 2.5  # at 1 s, well before the 3 s an ordinary call would have
    assert rejected.call_id == body["value"][0]["resourceData"]["id"] and rejected.status == 404


# The pure rules


def test_a_policy_recording_call_gets_the_same_share_of_its_five_seconds() -> None:
    plain = Call("a", "incoming")
    recording = Call("b", "incoming", data={"incomingContext": {"observedParticipantId": "x"}})
    assert guard_delay(plain, 10) == 10
    assert guard_delay(recording, 10) == pytest.approx(10 / 3)
    assert guard_delay(None, 9) == 9


@pytest.mark.payloads
def test_the_documented_policy_recording_call_is_known_as_one() -> None:
    body = load_json(DOCS / "incoming-call-policy-recording-created.json")
    assert is_policy_recording(body["value"][0]["resourceData"])
    for other in ("incoming-call-created.json", "incoming-call-created-video.json"):
        assert not is_policy_recording(load_json(DOCS / other)["value"][0]["resourceData"])


def test_one_reply_per_call_and_the_guard_only_while_incoming() -> None:
    call = Call("a", "incoming")
    first = claim_reply(call, "answer", "handler", "t1")
    assert first is not None and first.call is not None
    assert first.call.reply == {"action": "answer", "by": "handler", "at": "t1"}
    assert call.reply is None  # the stored call is not changed in place
    assert claim_reply(first.call, "reject", "guard", "t2") is None
    assert claim_reply(Call("b", "establishing"), "reject", "guard", "t2") is None
    assert claim_reply(Call("c", "establishing"), "answer", "handler", "t2") is not None
    assert claim_reply(None, "answer", "handler", "t2") is None
    released = release_reply(first.call, first.call.reply)
    assert released is not None and released.call is not None and released.call.reply is None
    assert release_reply(first.call, {"action": "reject", "by": "guard", "at": "t3"}) is None
