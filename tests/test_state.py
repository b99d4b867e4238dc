"""The pure state machine: plain data in, decisions out."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from webhook.builders import (
    call_ended,
    call_notification,
    envelope,
    incoming_call,
    new_id,
    operation_notification,
    participant,
    result_info,
    roster_notification,
    tone_notification,
)
from webhook.model import CALL_STATES, Call
from webhook.notification import Claims
from webhook.operations import operation_type
from webhook.parse import load_notifications
from webhook.scenarios import SCENARIOS
from webhook.state import decide, rank
from webhook.timers import claim_keepalive, needs_keepalive, reschedule_keepalive

from .support import history_states, is_subsequence, replay_pure

CALL = "57dab8b1-894c-409a-b240-bd8beae78896"


def states_sent(events):  # type: ignore[no-untyped-def]
    return [(e.sender, e.kwargs["previous"]) for e in events if e.name == "call_state_changed"]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_docs_lifecycle_in_order_ends_right_with_its_full_history(name: str) -> None:
    scenario = SCENARIOS[name](new_id())
    call, events = replay_pure(list(scenario.bodies))
    assert call is not None
    assert call.state == scenario.final_state
    assert history_states(call) == list(scenario.states)
    assert [sender for sender, _ in states_sent(events)] == list(scenario.states)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_duplicated_and_shuffled_delivery_ends_right_and_never_goes_back(name: str, data: st.DataObject) -> None:
    scenario = SCENARIOS[name](CALL)
    bodies = list(scenario.bodies) * 2
    shuffled = data.draw(st.permutations(bodies))
    call, events = replay_pure(shuffled)
    assert call is not None
    assert call.state == scenario.final_state
    # The history is what really happened, with steps that arrived too late left out.
    assert is_subsequence(history_states(call), scenario.states), history_states(call)
    assert history_states(call)[-1] == scenario.final_state
    assert [s for s, _ in states_sent(events)] == history_states(call)


def test_deleted_without_state_ends_the_call_and_explains_nothing_it_does_not_know() -> None:
    call, events = replay_pure(
        [envelope(incoming_call(CALL)), envelope(call_notification(CALL, change_type="deleted"))]
    )
    assert call is not None and call.state == "terminated"
    assert call.end_reason == "The call ended."
    assert states_sent(events) == [("incoming", None), ("terminated", "incoming")]


def test_deleted_ends_the_call_whatever_state_its_body_claims() -> None:
    body = envelope(call_notification(CALL, "established", change_type="deleted"))
    call, _ = replay_pure([body])
    assert call is not None and call.state == "terminated"


@pytest.mark.parametrize("late", ["incoming", "establishing", "established", "terminating", "hold", "madeUpState"])
def test_nothing_reopens_a_terminated_call(late: str) -> None:
    call, events = replay_pure(
        [
            envelope(call_notification(CALL, "established")),
            envelope(call_ended(CALL)),
            envelope(call_notification(CALL, late)),
        ]
    )
    assert call is not None and call.state == "terminated"
    assert len(call.stale) == 1 and late in call.stale[0]["reason"]
    assert [e.sender for e in events] == ["established", "terminated"]


def test_establishing_after_established_is_stale() -> None:
    call, events = replay_pure(
        [envelope(call_notification(CALL, "established")), envelope(call_notification(CALL, "establishing"))]
    )
    assert call is not None and call.state == "established"
    assert call.stale[0]["reason"] == "establishing after established"
    assert len(events) == 1


def test_failed_transfer_returns_to_established_and_a_plain_late_established_does_not() -> None:
    failed = call_notification(CALL, "established", result={"code": 500, "subCode": 7000, "message": "x"})
    call, _ = replay_pure([envelope(call_notification(CALL, "transferring")), envelope(failed)])
    assert call is not None and call.state == "established"
    assert call.result_info == {"code": 500, "subcode": 7000, "message": "x"}
    call, _ = replay_pure(
        [envelope(call_notification(CALL, "transferring")), envelope(call_notification(CALL, "established"))]
    )
    assert call is not None and call.state == "transferring"


def test_hold_and_back_are_both_applied() -> None:
    call, events = replay_pure([envelope(call_notification(CALL, s)) for s in ("established", "hold", "established")])
    assert call is not None and history_states(call) == ["established", "hold", "established"]
    assert len(events) == 3


def test_unknown_future_state_is_stored_as_it_comes() -> None:
    call, events = replay_pure(
        [envelope(call_notification(CALL, "established")), envelope(call_notification(CALL, "parked"))]
    )
    assert call is not None and call.state == "parked"
    assert events[-1].sender == "parked"


def test_state_spelling_is_compared_case_insensitively() -> None:
    call, _ = replay_pure([envelope(call_notification(CALL, "Established", change_type="Updated"))])
    assert call is not None and call.state == "established"
    assert call.history[0]["changeType"] == "updated"


def test_same_state_with_new_data_updates_without_transition_and_a_true_duplicate_changes_nothing() -> None:
    plain = envelope(call_notification(CALL, "established"))
    audio = envelope(call_notification(CALL, "established", mediaState={"audio": "active"}))
    call, events = replay_pure([plain, audio, audio])
    assert call is not None
    assert call.data["mediaState"] == {"audio": "active"}
    assert len(call.history) == 1
    assert [e.name for e in events] == ["call_state_changed", "call_updated", "call_media_active"]
    assert events[1].kwargs["changes"] == {"mediaState": {"old": None, "new": {"audio": "active"}}}
    assert call.duplicates == 1


def test_result_info_numbers_are_ints_from_numeric_strings_and_the_end_is_explained() -> None:
    call, _ = replay_pure([envelope(call_ended(CALL, result_info("200", "5001", "The conversation has ended.")))])
    assert call is not None
    assert call.end == {
        "resultInfo": {
            "@odata.type": "#microsoft.graph.resultInfo",
            "code": 200,
            "subcode": 5001,
            "message": "The conversation has ended.",
        }
    }
    assert call.end_reason == "The conversation ended."


def test_the_end_reason_comes_from_the_ending_notification_not_an_earlier_failed_transfer() -> None:
    failed = call_notification(CALL, "established", result={"code": 500, "subcode": 7000})
    call, _ = replay_pure(
        [envelope(call_notification(CALL, "transferring")), envelope(failed), envelope(call_ended(CALL))]
    )
    assert call is not None and call.end == {}
    assert call.end_reason == "The call ended."


def test_termination_reason_is_kept_and_explained() -> None:
    call, _ = replay_pure([envelope(call_ended(CALL, terminationReason="AppTransferred"))])
    assert call is not None and call.termination_reason == "AppTransferred"
    assert call.end_reason is not None and "transferred" in call.end_reason


def test_tones_are_recorded_once_per_sequence_id() -> None:
    bodies = [
        envelope(tone_notification(CALL, "tone1", 6)),
        envelope(tone_notification(CALL, "tone1", 6)),
        envelope(tone_notification(CALL, "tone2", 7)),
    ]
    call, events = replay_pure(bodies)
    assert call is not None
    assert [(t["tone"], t["sequenceId"]) for t in call.tones] == [("tone1", 6), ("tone2", 7)]
    tones = [(e.sender, e.kwargs["sequence_id"]) for e in events if e.name == "tone_received"]
    assert tones == [("tone1", 6), ("tone2", 7)]
    assert "toneInfo" not in call.data


def test_roster_replaces_participants_and_an_older_sequence_is_stale() -> None:
    bot = participant("p-bot", "Bot", application=True, sequence=2)
    user = participant("p-user", "User", sequence=3)
    older = participant("p-bot", "Bot", application=True, sequence=1)
    call, events = replay_pure(
        [envelope(roster_notification(CALL, [bot, user])), envelope(roster_notification(CALL, [older]))]
    )
    assert call is not None
    assert [p["id"] for p in call.participants] == ["p-bot", "p-user"]
    assert call.roster_version == 3
    assert [e.name for e in events] == ["participants_updated", "participants_joined"]
    assert [(p["id"], p["isBot"]) for p in events[1].kwargs["participants"]] == [("p-bot", True), ("p-user", False)]
    assert "older than roster 3" in call.stale[0]["reason"]


def test_identical_roster_is_a_duplicate() -> None:
    roster = envelope(roster_notification(CALL, [participant(None, "Invited")]))
    call, events = replay_pure([roster, roster])
    assert call is not None and call.duplicates == 1
    assert [e.name for e in events] == ["participants_updated", "participants_joined"]


def test_operation_result_recorded_once_and_reported_with_its_type() -> None:
    op = new_id()
    body = envelope(operation_notification(CALL, op, "playPrompt", client_context="ctx"))
    call, events = replay_pure([body, body])
    assert call is not None
    assert call.operations[op]["type"] == "playPrompt"
    assert call.operations[op]["clientContext"] == "ctx"
    assert [(e.name, e.sender) for e in events] == [("operation_completed", "playPrompt")]
    assert call.state is None  # an operation says nothing about the call's state


def test_running_operation_after_its_completion_is_stale() -> None:
    op = new_id()
    call, events = replay_pure(
        [envelope(operation_notification(CALL, op)), envelope(operation_notification(CALL, op, status="running"))]
    )
    assert call is not None and call.operations[op]["status"] == "completed"
    assert len(events) == 1


@pytest.mark.parametrize(
    ("odata_type", "expected"),
    [
        ("#microsoft.graph.playPromptOperation", "playPrompt"),
        ("#microsoft.graph.inviteParticipantsOperation", "inviteParticipants"),
        ("#microsoft.graph.commsOperation", "unknown"),
        (None, "unknown"),
    ],
)
def test_operation_type(odata_type: str | None, expected: str) -> None:
    assert operation_type({"@odata.type": odata_type} if odata_type else {}) == expected


def test_a_notification_about_an_unknown_sub_resource_changes_nothing() -> None:
    body = envelope({"changeType": "updated", "resourceUrl": f"/communications/calls/{CALL}/audioRoutingGroups/x"})
    (notification,) = load_notifications(body)
    decision = decide(None, notification, "2026-01-01T00:00:00.000Z")
    assert decision.outcome == "ignored" and decision.call is None and decision.events == ()


def test_decide_never_mutates_the_current_call() -> None:
    current = Call(id=CALL, state="established", created_at="t0", updated_at="t0")
    before = current.to_dict()
    (notification,) = load_notifications(envelope(call_ended(CALL)))
    decision = decide(current, notification, "t1")
    assert current.to_dict() == before
    assert decision.call is not None and decision.call.state == "terminated"


_notification_parts = st.one_of(
    st.builds(
        lambda state, change, failed: call_notification(
            CALL, state, change_type=change, result={"code": 500, "subcode": 7000} if failed else None
        ),
        st.sampled_from([*CALL_STATES, "parked", None]),
        st.sampled_from(["created", "updated", "deleted", "Updated"]),
        st.booleans(),
    ),
    st.builds(lambda n: tone_notification(CALL, "tone1", n), st.integers(0, 3)),
    st.builds(lambda n: roster_notification(CALL, [participant(f"p{n}", "P", sequence=n)]), st.integers(0, 3)),
    st.builds(lambda s: operation_notification(CALL, "op-1", status=s), st.sampled_from(["running", "completed"])),
)


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(_notification_parts.map(envelope), max_size=14))
def test_any_sequence_keeps_the_invariants(bodies: list[dict[str, object]]) -> None:
    call, events = replay_pure(bodies)
    if call is None:
        return
    steps = [(step["from"], step["to"]) for step in call.history]
    for (_, to), (following_from, _) in itertools.pairwise(steps):
        assert following_from == to  # the history is a chain
    for origin, to in steps:
        assert origin != "terminated"  # nothing comes back from terminated
        assert rank(to) >= rank(origin) or (origin == "transferring" and rank(to) == rank("established"))
    assert [e.sender for e in events if e.name == "call_state_changed"] == [to for _, to in steps]
    tones = [e.kwargs["sequence_id"] for e in events if e.name == "tone_received"]
    assert len(tones) == len(set(tones))  # each sequenceId heard once


def test_a_call_needs_keepalive_from_its_answer_until_it_ends() -> None:
    call, _ = replay_pure([envelope(incoming_call(CALL)), envelope(call_notification(CALL, "establishing"))])
    assert call is not None and call.keepalive_at is None and not needs_keepalive(call)
    call, _ = replay_pure([envelope(call_notification(CALL, "established"))], start=call)
    assert call is not None and call.keepalive_at == "2026-01-01T00:00:00.000Z" and needs_keepalive(call)
    call, _ = replay_pure([envelope(call_notification(CALL, "terminating"))], start=call)
    assert call is not None and not needs_keepalive(call)


def test_a_keepalive_is_claimed_once_when_due_and_given_back_only_by_its_claim() -> None:
    call, _ = replay_pure([envelope(incoming_call(CALL)), envelope(call_notification(CALL, "established"))])
    assert call is not None  # answered at 00:00:01
    assert claim_keepalive(call, "2026-01-01T00:00:01.000Z", "2026-01-01T00:15:01.000Z") is None  # not before
    claimed = claim_keepalive(call, "2026-01-01T00:00:02.000Z", "2026-01-01T00:15:02.000Z")
    assert claimed is not None and claimed.call is not None and claimed.events == ()
    assert claimed.call.keepalive_at == "2026-01-01T00:15:02.000Z" and call.keepalive_at != claimed.call.keepalive_at
    assert claim_keepalive(claimed.call, "2026-01-01T00:00:02.000Z", "2026-01-01T00:15:03.000Z") is None  # taken
    assert reschedule_keepalive(claimed.call, "2026-01-01T00:15:09.000Z", "2026-01-01T00:01:00.000Z") is None
    back = reschedule_keepalive(claimed.call, "2026-01-01T00:15:02.000Z", "2026-01-01T00:01:00.000Z")
    assert back is not None and back.call is not None and back.call.keepalive_at == "2026-01-01T00:01:00.000Z"


def test_the_tenant_is_the_verified_one_else_the_calls_own() -> None:
    (notification,) = load_notifications(envelope(call_notification(CALL, "incoming", tenantId="from-the-call")))
    unverified = decide(None, notification, "now").call
    assert unverified is not None and unverified.tenant_id == "from-the-call"
    verified = decide(None, notification.with_claims(Claims(tenant_id="verified")), "now").call
    assert verified is not None and verified.tenant_id == "verified"
    (anonymous,) = load_notifications(envelope(incoming_call(CALL)))
    assert decide(None, anonymous, "now").call.tenant_id is None  # type: ignore[union-attr]


def test_what_was_learnt_from_graph_is_marked_and_never_counted_as_a_duplicate() -> None:
    call, _ = replay_pure([envelope(incoming_call(CALL)), envelope(call_notification(CALL, "established"))])
    (again,) = load_notifications(envelope(call_notification(CALL, "established")))
    resynced = decide(call, replace(again, origin="resync"), "later")
    assert resynced.outcome == "duplicate" and resynced.call is not None and resynced.call.duplicates == 0
    (ended,) = load_notifications(envelope(call_ended(CALL)))
    finished = decide(call, replace(ended, origin="keepAlive"), "later").call
    assert finished is not None and finished.history[-1]["origin"] == "keepAlive"
    assert "origin" not in finished.history[0]
