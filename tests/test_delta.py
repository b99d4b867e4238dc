"""Delta rosters (deltaParticipants with sequenceNumber), through the real endpoint with JWT verification on,
against the fake Graph: applied in order as deltas, an old or repeated one ignored, a gap repaired by reading
the roster back from Graph."""

from __future__ import annotations

from typing import Any

from webhook import on
from webhook.actions import CallActions
from webhook.builders import delta_roster, envelope, participant
from webhook.fakegraph import FakeCall, FakeGraph
from webhook.parse import load_notifications
from webhook.roster import apply_delta, keys

from .support import Served, metric_value, until


def send(fake: FakeGraph, call: FakeCall, sequence: int, *people: dict[str, Any]) -> None:
    """A delta roster, signed and posted as Graph posts it."""
    fake.notifier.send(call.callback_uri, call.tenant_id, [delta_roster(call.id, sequence, list(people))])
    fake.settle()


def name(entry: dict[str, Any]) -> str:
    identity = entry["info"]["identity"]
    kind = next(key for key in identity if not key.startswith("@"))
    return str(identity[kind]["displayName"])


def names(stored: dict[str, Any]) -> list[str]:
    return sorted(name(entry) for entry in stored["participants"])


def test_deltas_are_applied_in_order_and_old_ones_ignored(fake: FakeGraph, bot: Served) -> None:
    joined: list[str] = []
    left: list[str] = []

    @on.joined
    def came(participants: list[dict[str, Any]]) -> None:
        joined.extend(name(p) for p in participants if not p["isBot"])

    @on.left
    def went(participants: list[dict[str, Any]]) -> None:
        left.extend(name(p) for p in participants)

    call = fake.meeting(participants=("Alice", "Bob"))
    fake.settle()
    bob = next(p for p in call.participants.values() if name(p) == "Bob")
    joined.clear()
    carol = participant("carol-1", "Carol")
    send(fake, call, 1, carol)
    assert names(bot.call(call.id)) == ["Alice", "Bob", "Bot", "Carol"]
    send(fake, call, 2, {**bob, "removedState": {"reason": "Bob hung up"}}, {**carol, "isMuted": True})
    stored = bot.call(call.id)
    assert names(stored) == ["Alice", "Bot", "Carol"]
    assert next(p for p in stored["participants"] if p["id"] == "carol-1")["isMuted"] is True
    assert stored["rosterVersion"] == 2
    send(fake, call, 2, participant("dave-1", "Dave"))  # the same number again: a duplicate
    send(fake, call, 1, participant("erin-1", "Erin"))  # a late copy
    assert names(bot.call(call.id)) == ["Alice", "Bot", "Carol"]
    assert (joined, left) == (["Carol"], ["Bob"])
    assert not fake.sent("participants")  # no gap: nothing read back


def test_a_gap_is_repaired_by_reading_the_roster_back_from_graph(fake: FakeGraph, bot: Served) -> None:
    call = fake.meeting(participants=("Alice", "Bob"))
    fake.settle()
    send(fake, call, 1, participant("carol-1", "Carol"))
    before = metric_value("roster_repairs_total", outcome="repaired")
    send(fake, call, 4, participant("dave-1", "Dave"))  # 2 and 3 never came
    until(lambda: metric_value("roster_repairs_total", outcome="repaired") == before + 1, "the roster read back")
    (asked,) = fake.sent("participants")
    assert asked.status == 200
    # Graph's roster is the truth (the fake never heard of Carol or Dave); the next delta follows on from 4.
    stored = bot.call(call.id)
    assert names(stored) == ["Alice", "Bob", "Bot"]
    assert stored["rosterVersion"] == 4
    send(fake, call, 5, participant("erin-1", "Erin"))
    assert names(bot.call(call.id)) == ["Alice", "Bob", "Bot", "Erin"]


def test_answering_asks_for_delta_rosters(fake: FakeGraph, bot: Served) -> None:
    @on.call_state("incoming")
    def answer(actions: CallActions) -> None:
        actions.answer(delta_roster=True)

    fake.ring()
    fake.settle()
    (answered,) = fake.sent("answer")
    assert answered.body["callOptions"] == {
        "@odata.type": "#microsoft.graph.incomingCallOptions",
        "isDeltaRosterEnabled": True,
    }


def test_a_delta_is_read_as_one_and_never_as_a_participant() -> None:
    body = envelope(delta_roster("c1", 7, [participant("p1", "Pat"), participant(None, "Invited")]))
    (notification,) = load_notifications(body)
    assert notification.kind == "participants"
    assert notification.data["sequenceNumber"] == 7
    assert [p["id"] for p in notification.data["participants"]] == ["p1", None]
    body["value"][0]["resourceData"]["sequenceNumber"] = "7"  # a numeric string, as Graph sometimes writes them
    (notification,) = load_notifications(body)
    assert notification.data["sequenceNumber"] == 7


def test_a_delta_replaces_a_participant_known_by_identity_only() -> None:
    invited = participant(None, "Invited", identity_id="u-1")
    arrived = participant("p-9", "Invited", identity_id="u-1")
    change = apply_delta([invited], [arrived])
    assert change.participants == [arrived] and change.joined == [] and change.left == []
    assert keys(arrived) >= keys(invited)
