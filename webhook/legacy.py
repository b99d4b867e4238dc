"""The legacy handshake: a callback in the old Bot Framework calling format (the Skype calling API that
preceded Graph's ``commsNotifications``) is answered ``204 No Content``, which asks Graph to send it again in
Graph's format, as Microsoft's Communications SDK does. Such a body is known by its shape; it is counted and
logged, never stored, never journaled.

The old format's incoming call, for instance::

    {"id": "...", "participants": [{"identity": "29:...", "languageId": "en-US", "originator": true}, ...],
     "isMultiparty": false, "presentedModalityTypes": ["audio"], "callState": "incoming"}
"""

from __future__ import annotations

from typing import Any

#: Keys only the old format's bodies have at their top (a Graph body has ``value`` there, and none of these).
LEGACY_KEYS = frozenset(("callState", "presentedModalityTypes", "isMultiparty", "operationOutcome"))


def is_legacy_calling_body(body: Any) -> bool:
    """True for a decoded body in the old Bot Framework calling format: an object with no ``value`` and at least
    one of the old format's own keys beside its ``id``."""
    return (
        isinstance(body, dict)
        and "value" not in body
        and isinstance(body.get("id"), str)
        and not LEGACY_KEYS.isdisjoint(body)
    )
