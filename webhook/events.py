"""Events: what a committed decision tells the handlers, and how an event is kept in the outbox and in failure
records (plain JSON, decoded back into an :class:`Event`).

An event's keyword arguments are JSON already, except ``call`` (a :class:`~webhook.model.Call`) and
``notification`` (a :class:`~webhook.notification.Notification`, kept as its own document). A call is kept as its own
record only (:meth:`~webhook.model.Call.core_dict`): its history, roster, operations and tones are read from the
store when the decoded event's handlers use them, so that an event costs the same on a call of ten transitions
as on one of ten thousand. (Rows written by earlier releases carry the whole call, and still decode.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from . import codec
from .model import COLLECTIONS, JSON, Call
from .notification import Notification
from .stored import Loader, StoredCall

Outcome = Literal["applied", "updated", "duplicate", "stale", "ignored"]

#: Reads one collection of a stored call: ``(call_id, name, history_total)``, the history up to that many
#: transitions (a store's :meth:`~webhook.store.CallStore.read_collection`).
CollectionReader = Callable[[str, str, int], object]


@dataclass(frozen=True)
class Event:
    """A signal to send once the decision is committed: ``signals.<name>.send(sender, **kwargs)``.

    ``id`` is the event's outbox row once a store committed it (None for events nobody needs to receive).
    """

    name: str
    sender: Any
    kwargs: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def encode(self, *, call_record: JSON | None = None) -> str:
        """The event as JSON text (its ``id`` is the row's, not part of the text). ``call_record`` is the
        :meth:`~webhook.model.Call.core_dict` of the event's ``call``, when the caller made it already."""
        kwargs: dict[str, Any] = {}
        call = self.kwargs.get("call")
        roster = call.participants if isinstance(call, Call) and not isinstance(call, StoredCall) else None
        for key, value in self.kwargs.items():
            if value is roster and roster is not None:
                kwargs[key] = {"__roster_ref__": True}  # the call's own roster: read back with it, not written twice
            elif isinstance(value, Call):
                record = call_record if value is call and call_record is not None else value.core_dict()
                kwargs[key] = {"__call_ref__": record}
            elif isinstance(value, Notification):
                kwargs[key] = {"__notification__": value.to_document()}
            else:
                kwargs[key] = value
        return codec.dumps({"name": self.name, "sender": self.sender, "kwargs": kwargs})

    def committed(self, event_id: int | None, call: Call | None, instead_of: Call | None) -> Event:
        """This event as a store committed it: the outbox row ``event_id`` (None: not written there), and
        ``call`` wherever its arguments held ``instead_of`` (when there is a call)."""
        kwargs = self.kwargs
        if call is not None:
            kwargs = {key: call if value is instead_of else value for key, value in kwargs.items()}
        return Event(self.name, self.sender, kwargs, event_id)

    @classmethod
    def decode(cls, text: str, event_id: int | None = None, *, collections: CollectionReader | None = None) -> Event:
        """The event ``text`` encodes; its call's collections read through ``collections`` when used (without
        it, they are empty)."""
        doc = codec.loads(text)
        kwargs: dict[str, Any] = {}
        for key, value in doc["kwargs"].items():
            if isinstance(value, dict) and "__roster_ref__" in value:
                continue  # the call's roster: set below, once the call is decoded
            if isinstance(value, dict) and "__call_ref__" in value:
                core = Call.from_dict(value["__call_ref__"])
                kwargs[key] = StoredCall.of(core, _loader(core, collections))
            elif isinstance(value, dict) and "__call__" in value:
                kwargs[key] = Call.from_dict(value["__call__"])
            elif isinstance(value, dict) and "__notification__" in value:
                kwargs[key] = Notification.from_document(value["__notification__"])
            else:
                kwargs[key] = value
        for key, value in doc["kwargs"].items():
            if isinstance(value, dict) and "__roster_ref__" in value and isinstance(kwargs.get("call"), Call):
                kwargs[key] = kwargs["call"].participants
        return cls(doc["name"], doc["sender"], kwargs, id=event_id)


@dataclass(frozen=True)
class Decision:
    """The result of :func:`webhook.state.decide` (and of the sweeper's decisions, :mod:`webhook.timers`).

    ``call`` is the call to store, or None when nothing is to be written (a notification about a resource we
    do not track). ``events`` are in the order they should be sent.
    """

    outcome: Outcome
    call: Call | None
    events: tuple[Event, ...] = ()
    reason: str = ""
    #: What to read back from Graph once this is committed: ``"roster"`` after a gap in a delta roster.
    repair: str = ""

    @property
    def changed(self) -> bool:
        return self.outcome in ("applied", "updated")

    def committed(self, call: Call | None, events: tuple[Event, ...]) -> Decision:
        """This decision with its call and events as a store committed them (the call as stored, the events
        numbered by their outbox rows)."""
        return Decision(self.outcome, call, events, self.reason, self.repair)


def _loader(call: Call, collections: CollectionReader | None) -> Loader:
    if collections is None:
        empty: dict[str, Any] = {name: {} if name == "operations" else [] for name in COLLECTIONS}
        return lambda name: empty[name]
    call_id, upto = call.id, call.history_total
    return lambda name: collections(call_id, name, upto)
