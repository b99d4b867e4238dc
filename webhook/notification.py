"""One validated ``commsNotification``, and who sent it (the verified token's claims). No Flask, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import JSON
from .resources import ResourceRef, parse_resource


@dataclass(frozen=True)
class Claims:
    """What a verified token says about the sender (filled by the auth layer; empty when auth is off)."""

    tenant_id: str | None = None
    #: The app that sent the token (its ``appid``/``azp``: Graph's own), not the bot's.
    app_id: str | None = None
    issuer: str | None = None
    #: The bot the token is for (its ``aud``): which of the receiver's bots the callback belongs to.
    audience: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """The fields by name, as ``Claims(**claims.to_dict())`` reads them back."""
        return {"tenant_id": self.tenant_id, "app_id": self.app_id, "issuer": self.issuer, "audience": self.audience}


@dataclass(frozen=True)
class Notification:
    """One validated ``commsNotification``.

    ``data`` is ``resourceData`` after validation: numbers normalized, unknown fields kept as sent. It is a
    dict for call and operation notifications and a list of dicts for rosters. ``raw`` is the notification
    exactly as it arrived.
    """

    change_type: str
    resource: ResourceRef
    data: Any
    raw: JSON
    claims: Claims = field(default_factory=Claims)
    #: Who told us: ``graph`` (a callback), or this receiver reading Graph itself (``resync``, ``keepAlive``:
    #: see :mod:`webhook.upkeep`).
    origin: str = "graph"

    @property
    def call_id(self) -> str:
        return self.resource.call_id

    @property
    def kind(self) -> str:
        return self.resource.kind

    def with_claims(self, claims: Claims) -> Notification:
        return Notification(self.change_type, self.resource, self.data, self.raw, claims, self.origin)

    def to_document(self) -> JSON:
        """The notification as JSON (what the outbox keeps); :meth:`from_document` reads it back. A roster's
        data that is its raw ``resourceData`` entry for entry is kept once, as the raw body."""
        return {
            "changeType": self.change_type,
            "path": self.resource.path,
            "data": _RAW if self._data_is_raw() else self.data,
            "raw": self.raw,
            "claims": self.claims.to_dict(),
            "origin": self.origin,
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Notification:
        data = doc["data"]
        return cls(
            change_type=doc["changeType"],
            resource=parse_resource(doc["path"]),
            data=list(doc["raw"].get("resourceData") or []) if data == _RAW else data,
            raw=doc["raw"],
            claims=Claims(**doc["claims"]),
            origin=doc.get("origin", "graph"),
        )

    def _data_is_raw(self) -> bool:
        """True when the data is the raw roster, the very entries (a roster as Graph sends it is not rewritten
        by validation: see :func:`webhook.plain.plain_roster`)."""
        data, raw = self.data, self.raw.get("resourceData")
        return (
            isinstance(data, list)
            and isinstance(raw, list)
            and len(data) == len(raw)
            and all(entry is sent for entry, sent in zip(data, raw, strict=True))
        )


#: Stands for a roster notification's data when it is its raw ``resourceData`` entry for entry.
_RAW = {"__raw_resource_data__": True}
