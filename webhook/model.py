"""The plain objects the core passes around: a call as stored, and who is on it (the notification that
changes it is :mod:`webhook.notification`'s; a call read from a store, :mod:`webhook.stored`'s).

No Flask and no I/O here. :class:`Call` round-trips through :meth:`Call.to_dict` / :meth:`Call.from_dict`,
which is also what the stores persist and what the read API shows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .codes import explain

JSON = dict[str, Any]

#: Call states documented in Graph v1.0, in their canonical spelling.
CALL_STATES = (
    "incoming",
    "establishing",
    "ringing",
    "established",
    "hold",
    "transferring",
    "transferAccepted",
    "redirecting",
    "terminating",
    "terminated",
)
CHANGE_TYPES = ("created", "updated", "deleted")


def canonical_enum(value: str, known: Collection[str]) -> str:
    """Return the known spelling of ``value`` compared case-insensitively, or ``value`` itself.

    Logs re-serialized by the C# SDK say ``Deleted`` and ``Terminated``; Graph adds values over time, which
    are kept exactly as sent.
    """
    if value in known:  # as Graph spells them: no case to fold
        return value
    lowered = value.lower()
    for candidate in known:
        if candidate.lower() == lowered:
            return candidate
    return value


def has_type(data: Any, name: str) -> bool:
    """Whether ``data`` (a notification's ``resourceData``) says it is a ``#microsoft.graph.<name>``, in any case
    (what tells a delta roster or a participant joining from a call or a roster sent to the same URL)."""
    kind = data.get("@odata.type") if isinstance(data, dict) else None
    return isinstance(kind, str) and kind.lower().endswith(name.lower())


@dataclass(frozen=True)
class Party:
    """Who is on one end of a call, read from Graph's ``identitySet``: ``kind`` is the identity's key
    (``user``, ``application``, ``phone``, ``guest``...), ``identity`` the whole set as Graph sent it."""

    kind: str
    id: str | None
    display_name: str | None
    identity: JSON

    @classmethod
    def from_info(cls, info: Any) -> Party | None:
        """The party of a ``participantInfo`` / ``invitationParticipantInfo`` (None when it names nobody)."""
        identity = info.get("identity") if isinstance(info, dict) else None
        if not isinstance(identity, dict):
            return None
        for kind, value in identity.items():
            if isinstance(value, dict) and not kind.startswith("@"):
                display_name, party_id = value.get("displayName"), value.get("id")
                return cls(
                    kind,
                    str(party_id) if party_id is not None else None,
                    str(display_name) if display_name is not None else None,
                    identity,
                )
        return None


@dataclass
class Call:
    """Everything we know about one call.

    ``state`` is None until a notification tells us the state (an operation result can arrive first).
    ``data`` is the call's ``resourceData`` merged field by field over every notification applied (the latest
    value of each top-level field wins; ``toneInfo`` is an event, kept in ``tones`` instead).
    ``end`` is the ``resultInfo`` and ``terminationReason`` of the notification that ended the call.
    ``media_active_at`` is when the call was first ``established`` with ``mediaState.audio`` ``active``.
    ``seen_at`` is when the last notification about the call arrived (duplicates and late ones included);
    ``stale_since`` is set when an active call went quiet for too long (its ``terminated`` may never come), and
    cleared by the next notification.
    ``history_total`` counts every transition the call ever made (``history`` may keep only the latest: see
    the store's history limit).
    ``tenant_id`` is the tenant the call belongs to (the verified ``tid``, else the call's ``tenantId``): whose
    token acts on it. ``keepalive_at`` is when the call last got a ``keepAlive`` (at first: when it was
    answered); None while it needs none. ``reply`` is how the bot replied to the incoming call (``action``
    answer, reject or redirect; ``by`` handler or guard; ``at``), kept before the request goes to Graph
    (:mod:`webhook.answering`); None until then. ``app_id`` is the bot the call belongs to (the ``aud`` of its
    first verified notification): whose credentials act on it, when one receiver serves several bots.
    """

    id: str
    state: str | None = None
    data: JSON = field(default_factory=dict)
    participants: list[JSON] = field(default_factory=list)
    roster_version: int | None = None
    operations: dict[str, JSON] = field(default_factory=dict)
    tones: list[JSON] = field(default_factory=list)
    history: list[JSON] = field(default_factory=list)
    history_total: int = 0
    stale: list[JSON] = field(default_factory=list)
    duplicates: int = 0
    end: JSON | None = None
    media_active_at: str | None = None
    stale_since: str | None = None
    tenant_id: str | None = None
    keepalive_at: str | None = None
    reply: JSON | None = None
    app_id: str | None = None
    seen_at: str = ""
    created_at: str = ""
    updated_at: str = ""

    @property
    def caller(self) -> Party | None:
        """Who placed the call (its ``source``), as far as Graph said."""
        return Party.from_info(self.data.get("source"))

    @property
    def callees(self) -> tuple[Party, ...]:
        """Whom the call was placed to (its ``targets``)."""
        targets = self.data.get("targets")
        found = (Party.from_info(target) for target in targets) if isinstance(targets, list) else ()
        return tuple(party for party in found if party is not None)

    @property
    def callee(self) -> Party | None:
        """The first of :attr:`callees`: for a call to the bot, the bot."""
        return self.callees[0] if self.callees else None

    @property
    def direction(self) -> str | None:
        value = self.data.get("direction")
        return value if isinstance(value, str) else None

    @property
    def result_info(self) -> JSON | None:
        value = self.data.get("resultInfo")
        return value if isinstance(value, dict) else None

    @property
    def termination_reason(self) -> str | None:
        source = self.end if self.end is not None else self.data
        value = source.get("terminationReason")
        return value if isinstance(value, str) else None

    @property
    def end_reason(self) -> str | None:
        """A plain-language reason the call ended, or None while it has not."""
        if self.state != "terminated" or self.end is None:
            return None
        return explain(self.end.get("resultInfo"), self.termination_reason) or "The call ended."

    @property
    def ended(self) -> bool:
        return self.state == "terminated"

    def add_step(self, step: JSON) -> None:
        """Record one transition."""
        self.history.append(step)
        self.history_total += 1

    @property
    def history_dropped(self) -> int:
        """How many of the oldest transitions are no longer kept."""
        return max(0, self.history_total - len(self.history))

    def copy(self) -> Call:
        """A copy whose containers can be changed without touching this call's.

        Shallow below the containers: what the state machine changes it replaces (a field's value, a roster
        entry, an operation's record), never edits in place, so copying the whole tree (a deep copy cost as
        much as the call is long) is not needed.
        """
        containers: JSON = {
            "data": dict(self.data),
            "participants": list(self.participants),
            "operations": dict(self.operations),
            "tones": list(self.tones),
            "history": list(self.history),
            "stale": list(self.stale),
            "end": dict(self.end) if self.end is not None else None,
        }
        if type(self) is Call:  # its fields are its attributes, copied at once: a call is copied per notification
            copied = Call.__new__(Call)
            copied.__dict__.update(self.__dict__)
            copied.__dict__.update(containers)
            return copied
        return Call(**{name: getattr(self, name) for name in _SCALARS}, **containers)

    def to_dict(self) -> JSON:
        """The stored form (and the read API's): camelCase keys, JSON values only."""
        return {
            **self.core_dict(),
            "participants": self.participants,
            "operations": list(self.operations.values()),
            "tones": self.tones,
            "history": self.history,
            "historyDropped": self.history_dropped,
        }

    def core_dict(self) -> JSON:
        """:meth:`to_dict` without the four collections that grow with the call's life (history, roster,
        operations, tones): what a store keeps in the call's own record, the rest as rows of their own."""
        return {
            "id": self.id,
            "state": self.state,
            "direction": self.direction,
            "resultInfo": self.result_info,
            "terminationReason": self.termination_reason,
            "endReason": self.end_reason,
            "rosterVersion": self.roster_version,
            "historyTotal": self.history_total,
            "stale": self.stale,
            "duplicates": self.duplicates,
            "end": self.end,
            "mediaActiveAt": self.media_active_at,
            "staleSince": self.stale_since,
            "tenantId": self.tenant_id,
            "keepAliveAt": self.keepalive_at,
            "reply": self.reply,
            "appId": self.app_id,
            "seenAt": self.seen_at,
            "data": self.data,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Call:
        history = list(doc.get("history") or [])
        return cls(
            id=doc["id"],
            state=doc.get("state"),
            data=dict(doc.get("data") or {}),
            participants=list(doc.get("participants") or []),
            roster_version=doc.get("rosterVersion"),
            operations={op["id"]: op for op in doc.get("operations") or []},
            tones=list(doc.get("tones") or []),
            history=history,
            history_total=int(doc.get("historyTotal") or len(history)),
            stale=list(doc.get("stale") or []),
            duplicates=int(doc.get("duplicates") or 0),
            end=doc.get("end"),
            media_active_at=doc.get("mediaActiveAt"),
            stale_since=doc.get("staleSince"),
            tenant_id=doc.get("tenantId"),
            keepalive_at=doc.get("keepAliveAt"),
            reply=doc.get("reply"),
            app_id=doc.get("appId"),
            seen_at=doc.get("seenAt") or doc.get("updatedAt") or "",
            created_at=doc.get("createdAt") or "",
            updated_at=doc.get("updatedAt") or "",
        )


#: The collections of a call, by attribute.
COLLECTIONS = ("history", "participants", "operations", "tones")
_SCALARS = tuple(name for name in Call.__dataclass_fields__ if name not in (*COLLECTIONS, "data", "stale", "end"))
