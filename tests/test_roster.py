"""Rosters: who joined and who left, whichever way apply finds it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, strategies as st

from webhook import roster as rosters
from webhook.builders import participant

# A small pool, so that drawn rosters share participants: ids in either case or missing (an invited
# participant's first roster), identities shared between some of them.
_IDS = st.sampled_from(["a1", "A1", "b2", "c3", None, ""])
_NAMES = st.sampled_from(["Ann", "Bob", "Cem"])


@st.composite
def people(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(_NAMES)
    entry = participant(draw(_IDS), name, identity_id=draw(st.sampled_from([name, name.upper(), None])))
    if draw(st.booleans()):
        entry["isMuted"] = True
    return entry


def _reference(current: list[dict[str, Any]], roster: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """Joined and left as the module's docstring defines them: known by no key on the other side."""
    present = [p for p in roster if not p.get("removedState")]
    before = set().union(*(rosters.keys(p) for p in current))
    after = set().union(*(rosters.keys(p) for p in present))
    return [p for p in present if not rosters.keys(p) & before], [p for p in current if not rosters.keys(p) & after]


@given(st.lists(people(), max_size=5), st.lists(people(), max_size=5))
def test_joined_and_left_are_those_known_by_no_key_on_the_other_side(current: Any, roster: Any) -> None:
    change = rosters.apply(current, roster)
    assert (change.joined, change.left) == _reference(current, roster)
    assert change.participants == roster


@given(st.lists(people(), max_size=6), st.data())
def test_a_roster_of_the_same_people_changing_a_field_has_nobody_joining_or_leaving(
    current: Any, data: st.DataObject
) -> None:
    roster = [{**p, "isMuted": data.draw(st.booleans())} for p in current]  # same ids, same order
    change = rosters.apply(current, roster)
    assert (change.joined, change.left) == _reference(current, roster)
    assert change.participants == roster


def test_a_removal_lists_who_left() -> None:
    ann, bob = participant("a1", "Ann"), participant("b2", "Bob")
    gone = {**participant("A1", "Ann"), "removedState": {"reason": "left"}}
    change = rosters.apply([ann, bob], [gone], removal=True)
    assert (change.participants, change.joined, change.left) == ([bob], [], [ann])
