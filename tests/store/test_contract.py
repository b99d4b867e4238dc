"""One contract, two stores: every test here runs on SQLite and on Redis."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from datetime import datetime
from typing import Any

import pytest

from webhook import create_app
from webhook.builders import (
    call_ended,
    call_notification,
    envelope,
    incoming_call,
    new_id,
    operation_notification,
    participant,
    roster_notification,
    tone_notification,
)
from webhook.parse import load_notifications
from webhook.scenarios import SCENARIOS
from webhook.simulate import delivery
from webhook.store import CallStore, SQLiteStore
from webhook.store.base import Lease
from webhook.store.completions import COMPLETE_AT_ONCE
from webhook.timers import claim_keepalive

from ..conftest import ADMIN_TOKEN, Recorder
from ..support import history_states, is_subsequence, store_of

NOW = "2026-01-01T00:00:00.000Z"
NOW_PLUS_ONE = "2026-01-01T00:00:01.000Z"


def open_for(settings: dict[str, str], **options: Any) -> CallStore:
    store: CallStore = store_of(settings, **options)
    return store


@pytest.fixture
def store(any_store_settings: dict[str, str]) -> CallStore:
    return open_for(any_store_settings)


def apply_all(store: CallStore, *bodies: dict[str, Any], **options: Any) -> list[Any]:
    return [store.apply(n, NOW, **options) for body in bodies for n in load_notifications(body)]


def test_calls_are_kept_listed_by_state_and_survive_reopening(
    store: CallStore, any_store_settings: dict[str, str]
) -> None:
    ringing, up, ended = new_id(), new_id(), new_id()
    apply_all(store, envelope(incoming_call(ringing)), envelope(incoming_call(up)), envelope(incoming_call(ended)))
    apply_all(store, envelope(call_notification(up, "established")), envelope(call_ended(ended)))
    reopened = open_for(any_store_settings)
    call = reopened.get(up)
    assert call is not None
    assert history_states(call) == ["incoming", "established"]
    assert [c.id for c in reopened.list_calls("incoming")] == [ringing]
    assert [c.id for c in reopened.list_calls("established")] == [up]
    assert [c.id for c in reopened.list_calls("terminated")] == [ended]
    assert {c.id for c in reopened.list_calls(active=True)} == {ringing, up}
    assert {c.id for c in reopened.list_calls()} == {ringing, up, ended}
    assert len(reopened.list_calls(limit=2)) == 2
    assert reopened.get(new_id()) is None


def _apply_in_process(args: tuple[dict[str, str], str, int]) -> int:
    settings, call_id, copies = args
    store = open_for(settings)
    (notification,) = load_notifications(envelope(call_notification(call_id, "established")))
    return sum(len(store.apply(notification, NOW).events) for _ in range(copies))


def test_the_same_transition_from_eight_processes_is_applied_once(any_store_settings: dict[str, str]) -> None:
    call_id = new_id()
    open_for(any_store_settings)  # create the schema before the race
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        events = pool.map(_apply_in_process, [(any_store_settings, call_id, 5)] * 8)
    assert sum(events) == 1
    call = open_for(any_store_settings).get(call_id)
    assert call is not None
    assert (call.duplicates, len(call.history)) == (39, 1)


def test_events_with_receivers_wait_in_the_outbox_until_completed(store: CallStore) -> None:
    call_id = new_id()
    (decision,) = apply_all(store, envelope(incoming_call(call_id)), lease=Lease("me", time.time() + 60))
    (event,) = decision.events
    assert event.id is not None
    assert store.pending_events() == 1
    # A live owner within its lease keeps its events.
    assert store.claim_orphans("other", time.time(), time.time() + 60, lambda owner: False) == []
    store.complete([event.id])
    assert store.pending_events() == 0
    (skipped,) = apply_all(store, envelope(call_ended(call_id)), lease=Lease(needs_delivery=lambda e: False))
    assert [e.id for e in skipped.events] == [None]
    assert store.pending_events() == 0


def test_a_delivered_event_leaves_the_outbox_with_the_next_commit_not_in_a_write_of_its_own(
    store: CallStore,
) -> None:
    store.complete_within = 60  # no timer in this test: only the commit removes it
    call_id = new_id()
    (decision,) = apply_all(store, envelope(incoming_call(call_id)), lease=Lease("me", time.time() + 60))
    (event,) = decision.events
    store.complete([event.id])
    assert len(_outbox_texts(store)) == 1  # still there, leased to this process: nobody else's to deliver
    assert store.claim_orphans("other", time.time(), time.time() + 60, lambda owner: False) == []
    apply_all(store, envelope(call_notification(call_id, "established")), lease=Lease(needs_delivery=lambda e: False))
    assert _outbox_texts(store) == []


def test_a_backlog_of_delivered_events_leaves_a_few_hundred_per_commit(store: CallStore) -> None:
    store.complete_within = 60
    lease = Lease("me", time.time() + 60)
    ids = [
        e.id
        for body in [envelope(incoming_call(new_id())) for _ in range(COMPLETE_AT_ONCE + 20)]
        for decision in apply_all(store, body, lease=lease)
        for e in decision.events
        if e.id is not None
    ]
    store.complete(ids)
    apply_all(store, envelope(incoming_call(new_id())), lease=Lease(needs_delivery=lambda e: False))
    assert len(_outbox_texts(store)) == 20  # the oldest went with that commit; no statement is unbounded
    assert store.pending_events() == 0


def test_a_delivered_event_leaves_the_outbox_soon_when_no_commit_follows(store: CallStore) -> None:
    store.complete_within = 0.1
    (decision,) = apply_all(store, envelope(incoming_call(new_id())), lease=Lease("me", time.time() + 60))
    store.complete([event.id for event in decision.events if event.id is not None])
    deadline = time.monotonic() + 10
    while _outbox_texts(store) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _outbox_texts(store) == []


def test_orphaned_events_are_claimed_once_with_their_call_and_notification(store: CallStore) -> None:
    call_id = new_id()
    apply_all(store, envelope(incoming_call(call_id)), lease=Lease("dead-process", time.time() + 60))
    apply_all(store, envelope(call_ended(call_id)), lease=Lease("expired", time.time() - 1))
    claimed = store.claim_orphans("me", time.time(), time.time() + 60, lambda owner: owner == "dead-process")
    assert sorted(e.sender for e in claimed) == ["incoming", "terminated"]
    ended = next(e for e in claimed if e.sender == "terminated")
    assert ended.kwargs["call"].id == call_id
    assert ended.kwargs["notification"].change_type == "deleted"
    assert ended.kwargs["end_reason"] == "The call ended."
    # Claimed rows are now "me"'s, leased: nobody else takes them, and neither does "me" again.
    assert store.claim_orphans("third", time.time(), time.time() + 60, lambda owner: False) == []
    assert store.claim_orphans("me", time.time(), time.time() + 60, lambda owner: True) == []
    store.complete([e.id for e in claimed if e.id is not None])
    assert store.pending_events() == 0


def test_failures_are_recorded_retried_and_resolved(store: CallStore) -> None:
    first = store.record_failure("c1", "mod.handler", "call_state_changed", '{"e": 1}', "Traceback: boom", NOW)
    second = store.record_failure(None, "mod.other", "tone_received", '{"e": 2}', "Traceback: bang", NOW)
    assert [f.id for f in store.failures()] == [first, second]
    store.update_failure(first, resolved=False, error="Traceback: boom again", now="later")
    failure = store.failure(first)
    assert failure is not None
    assert (failure.attempts, failure.status, failure.error, failure.last_at) == (
        2,
        "pending",
        "Traceback: boom again",
        "later",
    )
    store.update_failure(first, resolved=True, error=None, now="later still")
    assert [f.id for f in store.failures()] == [second]
    assert [f.status for f in store.failures(include_resolved=True)] == ["resolved", "pending"]
    assert store.failure(10_000) is None


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_lifecycles_duplicated_and_shuffled_through_the_endpoint(
    any_store_settings: dict[str, str], recorder: Recorder, name: str
) -> None:
    app = create_app({"AUTH": "disabled", "ADMIN_TOKEN": ADMIN_TOKEN, **any_store_settings})
    client = app.test_client()
    scenarios = [SCENARIOS[name](new_id()) for _ in range(5)]
    for body in delivery(scenarios, copies=2, seed=3):
        assert client.post("/api/calls", json=body).status_code == 202
    for scenario in scenarios:
        call = client.get(
            f"/api/calls/{scenario.call_id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ).get_json()
        assert call["state"] == scenario.final_state
        assert is_subsequence(history_states(call), scenario.states)
        heard = [s for n, s, kw in recorder.sent if n == "call_state_changed" and kw["call"].id == scenario.call_id]
        assert heard == history_states(call)


def test_keepalives_are_due_for_answered_calls_and_claimed_by_one_of_many(any_store_settings: dict[str, str]) -> None:
    store = open_for(any_store_settings)
    answered, ringing, ended = new_id(), new_id(), new_id()
    apply_all(
        store, envelope(incoming_call(answered)), envelope(incoming_call(ringing)), envelope(incoming_call(ended))
    )
    apply_all(
        store, envelope(call_notification(answered, "established")), envelope(call_notification(ended, "established"))
    )
    apply_all(store, envelope(call_ended(ended)))
    after = datetime.fromisoformat(NOW.replace("Z", "+00:00")).timestamp() + 1
    assert store.keepalives_due(after) == [answered]  # not the unanswered call, not the ended one
    assert store.keepalives_due(after - 2) == []  # its last keepAlive (the answer) is not before then
    claimed_at = "2026-01-01T00:15:00.000Z"
    stores = [open_for(any_store_settings) for _ in range(8)]
    start = threading.Barrier(len(stores))
    won: list[Any] = []

    def claim(other: CallStore) -> None:
        start.wait()
        won.append(other.update(answered, claimed_at, lambda call: claim_keepalive(call, NOW_PLUS_ONE, claimed_at)))

    threads = [threading.Thread(target=claim, args=(other,)) for other in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([decision for decision in won if decision is not None]) == 1
    assert store.keepalives_due(after) == []  # the period starts again at the claim
    stored = store.get(answered)
    assert stored is not None and stored.keepalive_at == claimed_at


def test_only_the_latest_transitions_are_kept_and_the_others_counted(any_store_settings: dict[str, str]) -> None:
    store = open_for(any_store_settings, history_limit=5)
    call_id = new_id()
    apply_all(store, envelope(incoming_call(call_id)))
    for state in ["established", "hold"] * 4:
        apply_all(store, envelope(call_notification(call_id, state)))
    doc = store.get(call_id).to_dict()  # type: ignore[union-attr]
    assert doc["historyTotal"] == 9 and doc["historyDropped"] == 4
    assert [(step["from"], step["to"]) for step in doc["history"]] == [
        ("established", "hold"),
        ("hold", "established"),
        ("established", "hold"),
        ("hold", "established"),
        ("established", "hold"),
    ]


def test_a_call_is_read_back_whole_and_in_order_and_handlers_see_every_collection(
    store: CallStore, recorder: Recorder
) -> None:
    call_id = new_id()
    people = [participant(f"p-{index}", f"person {index}") for index in range(5)]
    apply_all(store, envelope(incoming_call(call_id)), envelope(call_notification(call_id, "established")))
    apply_all(store, envelope(roster_notification(call_id, people)))
    muted = [*people[:2], {**people[2], "isMuted": True}, *people[3:4]]  # one muted, the last one left
    for index, body in enumerate(
        [
            envelope(roster_notification(call_id, muted)),
            envelope(operation_notification(call_id, "op-b", client_context="second")),
            envelope(operation_notification(call_id, "op-a", client_context="first")),
            envelope(tone_notification(call_id, "tone1", 1)),
            envelope(tone_notification(call_id, "tone1", 1)),  # the same press, again
            envelope(tone_notification(call_id, "tone2", 2)),
        ]
    ):
        decisions = apply_all(store, body)
        assert decisions[0].changed is (index != 4)
    stored = store.get(call_id)
    assert stored is not None
    assert [p["id"] for p in stored.participants] == ["p-0", "p-1", "p-2", "p-3"]
    assert [p["isMuted"] for p in stored.participants] == [False, False, True, False]
    assert list(stored.operations) == ["op-b", "op-a"]  # in the order they were first heard
    assert [t["tone"] for t in stored.tones] == ["tone1", "tone2"]
    assert history_states(stored) == ["incoming", "established"]
    (notification,) = load_notifications(envelope(call_notification(call_id, "hold")))
    decision = store.apply(notification, NOW)
    (event,) = decision.events
    call = event.kwargs["call"]  # what a handler gets: every collection, read when used
    assert history_states(call) == ["incoming", "established", "hold"]
    assert len(call.participants) == 4 and list(call.operations) == ["op-b", "op-a"] and len(call.tones) == 2
    assert call.to_dict() == store.get(call_id).to_dict()  # type: ignore[union-attr]


def test_listings_are_ordered_and_filtered_alike_on_both_stores(store: CallStore) -> None:
    ids = sorted(new_id() for _ in range(4))
    early, late = "2026-01-01T00:00:01.000Z", "2026-01-01T00:00:02.000Z"
    for call_id in ids:  # the same moment for all: the id breaks the tie, descending
        (notification,) = load_notifications(envelope(incoming_call(call_id)))
        store.apply(notification, early)
    (ended,) = load_notifications(envelope(call_ended(ids[1])))
    store.apply(ended, late)  # heard of last
    assert [c.id for c in store.list_calls()] == [ids[1], ids[3], ids[2], ids[0]]
    assert [c.id for c in store.list_calls(active=True)] == [ids[3], ids[2], ids[0]]
    assert [c.id for c in store.list_calls("incoming")] == [ids[3], ids[2], ids[0]]
    assert [c.id for c in store.list_calls("terminated")] == [ids[1]]
    assert store.list_calls("terminated", active=True) == []
    assert [c.id for c in store.list_calls(limit=2)] == [ids[1], ids[3]]


def test_each_bots_calls_are_listed_apart(store: CallStore) -> None:
    from dataclasses import replace

    from webhook.notification import Claims

    mine, theirs, unknown = new_id(), new_id(), new_id()
    for call_id, app in ((mine, "app-a"), (theirs, "app-b"), (unknown, None)):
        (notification,) = load_notifications(envelope(incoming_call(call_id)))
        store.apply(replace(notification, claims=Claims(tenant_id="t", audience=app)), NOW)
    (ended,) = load_notifications(envelope(call_ended(mine)))
    store.apply(ended, NOW_PLUS_ONE)  # a later notification without claims keeps the call's bot
    stored = store.get(mine)
    assert stored is not None and stored.app_id == "app-a"
    assert [c.id for c in store.list_calls(app="app-a")] == [mine]
    assert [c.id for c in store.list_calls(app="app-b", active=True)] == [theirs]
    assert store.list_calls(app="app-a", active=True) == []
    assert store.list_calls("incoming", app="app-a") == []
    assert store.list_calls(app="app-c") == []
    assert len(store.list_calls()) == 3


def test_an_orphaned_roster_event_comes_back_with_its_roster_written_once(store: CallStore) -> None:
    call_id = new_id()
    people = [participant(f"p-{index}", f"person {index}") for index in range(30)]
    apply_all(store, envelope(incoming_call(call_id)))
    (decision,) = apply_all(store, envelope(roster_notification(call_id, people)), lease=Lease("gone", 0.0))
    assert [e.name for e in decision.events] == ["participants_updated", "participants_joined"]
    claimed = store.claim_orphans("me", time.time(), time.time() + 60, lambda owner: True)
    updated = next(e for e in claimed if e.name == "participants_updated")
    joined = next(e for e in claimed if e.name == "participants_joined")
    assert updated.kwargs["participants"] == people == updated.kwargs["call"].participants
    assert updated.kwargs["notification"].data == people
    assert [p["id"] for p in joined.kwargs["participants"]] == [p["id"] for p in people]
    # The roster is in the row of the notification that carried it, once: not again as the call's, nor as data.
    (row,) = [text for text in _outbox_texts(store) if "participants_updated" in text]
    assert row.count('"p-17"') == 1


def _outbox_texts(store: CallStore) -> list[str]:
    """The outbox rows as the engine keeps them."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn:
            return [str(text) for (text,) in conn.execute("SELECT event FROM outbox")]
    return list(store.client.hvals(store.key("outbox")))  # type: ignore[attr-defined]
