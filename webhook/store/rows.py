"""How a decision becomes rows: what both engines write beyond a call's own record (its new transitions, the
roster positions that changed, the operations and tones added), and the partial call ``decide`` is given."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import codec
from ..events import Decision
from ..model import JSON, Call
from ..settings import default
from ..state import Needs

if TYPE_CHECKING:
    from .base import CallStore

#: Transitions kept per call (the oldest go beyond; ``historyDropped`` counts them): WEBHOOK_HISTORY_LIMIT.
HISTORY_LIMIT: int = default("HISTORY_LIMIT")
#: Operations and tones kept per call, the latest.
KEPT_PER_CALL = 1_000


@dataclass(frozen=True)
class Rows:
    """What a decision changed beyond the call's own record, as rows: what both engines write.

    ``history``: new transitions with their sequence numbers; ``roster``: participants to (re)write by position
    and the roster's new length (positions from there on are gone), or None when the roster did not change;
    ``operations``: records to upsert by id; ``tones``: tones to append.
    """

    history: list[tuple[int, JSON]]
    roster: list[tuple[int, JSON]] | None
    roster_length: int
    operations: list[tuple[str, JSON]]
    tones: list[JSON]


def rows_of(loaded: Call, decided: Call, needs: Needs) -> Rows:
    """The rows ``decided`` changed from ``loaded``, the call as the store read it for ``decide`` (with only
    what ``needs`` asked for: no history, the roster only for a roster, one operation, the tones of one
    sequence id)."""
    first = decided.history_total - len(decided.history)
    history = [(first + index, step) for index, step in enumerate(decided.history)]
    roster = None
    if needs.roster:
        old = loaded.participants
        roster = [
            (position, entry)
            for position, entry in enumerate(decided.participants)
            if position >= len(old) or old[position] != entry
        ]
    operations = [(op_id, op) for op_id, op in decided.operations.items() if loaded.operations.get(op_id) != op]
    return Rows(history, roster, len(decided.participants), operations, decided.tones[len(loaded.tones) :])


def json_rows(documents: Iterable[str]) -> list[Any]:
    """JSON documents (a roster's rows), decoded in one pass: one parse of their array instead of one per row."""
    return list(codec.loads("[" + ",".join(documents) + "]"))


def partial_call(core: Call, needs: Needs, roster: list[JSON], operation: JSON | None, tones: list[JSON]) -> Call:
    """The call ``decide`` is given: ``core`` (the call's own record, no collections) with what it needs."""
    core.participants = roster if needs.roster else []
    core.operations = {needs.operation: operation} if needs.operation is not None and operation is not None else {}
    core.tones = tones
    core.history = []
    return core


def as_stored(store: CallStore, decision: Decision, needs: Needs, event_ids: Sequence[int | None]) -> Decision:
    """``decision`` as committed: each event numbered by its outbox row (``event_ids``, in the events' order;
    None for one not written there), and its call, in itself and in its events, as a :class:`StoredCall` of
    ``store``: the partial call ``decide`` saw must not reach handlers, who get every collection, read when
    used."""
    call = decision.call
    stored = None if call is None else store.stored(call, {"participants": call.participants} if needs.roster else {})
    events = tuple(
        event.committed(event_id, stored, instead_of=call)
        for event, event_id in zip(decision.events, event_ids, strict=True)
    )
    return decision.committed(stored, events)
