"""The quirks of what Graph really sends, which the fake can switch on (``FakeGraph(quirks=...)``): the legacy
``resource`` beside ``resourceUrl``, call ids upper-cased without dashes, result codes as strings, unknown fields."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from ..builders import GRAPH, JSON

#: The quirks of what Graph sends that :class:`~webhook.fakegraph.FakeGraph` can switch on (see ``quirks=``).
QUIRKS = ("legacy_resource", "upper_ids", "string_codes", "unknown_fields")


def with_quirks(notification: JSON, switched_on: Iterable[str]) -> JSON:
    """The envelope Graph would POST for ``notification``, with the quirks switched on applied to a copy."""
    notification = copy.deepcopy(notification)
    quirks = set(switched_on)
    if "upper_ids" in quirks:
        parts = notification["resourceUrl"].split("/")
        parts[3] = parts[3].replace("-", "").upper()
        notification["resourceUrl"] = "/".join(parts)
    if "legacy_resource" in quirks:
        notification["resource"] = notification["resourceUrl"].replace("/communications/calls/", "/app/calls/")
    data = notification.get("resourceData")
    if "string_codes" in quirks and isinstance(data, dict) and isinstance(data.get("resultInfo"), dict):
        for name in ("code", "subcode"):
            data["resultInfo"][name] = str(data["resultInfo"][name])
    if "unknown_fields" in quirks:
        notification["undocumentedField"] = {"addedBy": "a later Graph"}
        if isinstance(data, dict):
            data["undocumentedField"] = [1, 2, 3]
    return {"@odata.type": GRAPH + "commsNotifications", "value": [notification]}
