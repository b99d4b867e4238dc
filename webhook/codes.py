"""Graph's ``resultInfo`` codes, explained in plain language.

Bot developers struggle to read ``{"code": 408, "subcode": 8537}`` (microsoft-graph-comms-samples #667, #771).
:func:`explain` turns a ``resultInfo`` into a sentence. Sources: the Delete-call page of the Graph docs and the
transfer, record and DTMF pages; an unknown code gets a generic sentence that still names the numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

#: (code, subcode) -> explanation. ``None`` as the code matches any code with that subcode.
END_REASONS: dict[tuple[int | None, int], str] = {
    (200, 4097): "The call was ended by the other participant.",
    (200, 5001): "The conversation ended.",
    (200, 5002): "The conversation ended.",
    (200, 7000): "The call was ended by the bot.",
    (200, 7015): "The call was transferred; the transfer completed.",
    (0, 7015): "The call was transferred; the transfer completed.",
    (408, 8537): "The call timed out: the bot did not send keepAlive (POST .../keepAlive every 15 to 45 minutes).",
    (408, 1106): "The call was not acknowledged in time: the bot must answer, reject or redirect within 15 seconds.",
    (410, 301005): "Media connectivity failed between the caller and the media platform.",
    (480, 10076): "The callee could not be reached.",
    (500, 1005): "The bot's media connectivity failed (application-hosted media).",
    (500, 7000): "The transfer failed; the call stays with the bot.",
    (400, 8508): "The media operation was cancelled.",
    (200, 8515): "The recording completed.",
    (404, 8522): "Graph no longer has the call (an action, keepAlive or GET answered 404) and said nothing more: "
    "comms-webhook ended it.",
}

_GENERIC_BY_CLASS = {
    2: "The call or operation completed normally",
    4: "The request was refused or timed out",
    5: "Graph or the media platform failed",
}


#: An integer as text: an optional sign and at most 20 digits (a 64-bit code with room to spare; a longer run
#: of digits is not a code, and converting it costs time that grows with its length).
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,20}")


def as_int(value: Any) -> int | None:
    """``value`` as an int when Graph could mean one: an int (not a bool), a float with no fraction, or a numeric
    string (``"200"``, ``" -7 "``, ``"+5"``; the Delete-call docs send codes as strings); else None. The one
    reading of Graph's integers: the schemas' ``GraphInt`` validates with it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        return int(text) if _INTEGER_TEXT.fullmatch(text) else None
    return None


def explain(result_info: Mapping[str, Any] | None, termination_reason: str | None = None) -> str | None:
    """Explain a ``resultInfo`` (code and subcode, ints or numeric strings) in one sentence.

    Returns None when there is nothing to explain (no resultInfo and no termination reason).
    """
    if not result_info:
        if termination_reason and termination_reason.lower() == "apptransferred":
            return "The call was transferred by the bot; the transfer completed."
        return f"The call ended ({termination_reason})." if termination_reason else None
    code = as_int(result_info.get("code"))
    subcode = as_int(result_info.get("subcode", result_info.get("subCode")))
    if subcode is not None:
        known = END_REASONS.get((code, subcode)) if code is not None else None
        if known:
            return known
    if code is None:
        return None
    generic = _GENERIC_BY_CLASS.get(code // 100 if code else 2, "Unrecognized result")
    return f"{generic} (code {code}, subcode {subcode if subcode is not None else 'none'})."
