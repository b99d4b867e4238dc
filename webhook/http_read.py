"""The read API: the calls this receiver keeps, for operators and tests (``ADMIN_TOKEN`` required; 403 without
one set)."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, request

from .errors import NotFound, RequestError
from .http import require_admin, webhook_state
from .model import CALL_STATES, canonical_enum
from .resources import canonical_id
from .setting_types import switch_value

read_api = Blueprint("webhook_read", __name__)
MAX_LIST_LIMIT = 1000


@read_api.get("/api/calls")
def list_calls() -> Response:
    """Calls, most recently heard of first: ``?state=established``, ``?active=true`` (not terminated) and
    ``?app=<app id>`` (one bot's) filter, ``?limit=`` caps (1-1000)."""
    state = webhook_state()
    require_admin(state.settings)
    wanted = request.args.get("state")
    limit_text = request.args.get("limit", "100")
    if not re.fullmatch(r"[0-9]{1,4}", limit_text) or not 1 <= int(limit_text) <= MAX_LIST_LIMIT:
        raise RequestError(f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}.", code="invalid_query")
    active_text = request.args.get("active", "false")
    active = switch_value(active_text) if active_text else None
    if active is None:
        raise RequestError(
            f"active must be true or false (also on/off, 1/0); got {active_text!r}.", code="invalid_query"
        )
    in_state = canonical_enum(wanted, CALL_STATES) if wanted else None
    if in_state is not None and in_state not in CALL_STATES:
        raise RequestError(f"state must be one of {', '.join(CALL_STATES)}; got {wanted!r}.", code="invalid_query")
    app = request.args.get("app") or None
    calls = state.store.list_calls(in_state, int(limit_text), active=active, app=app)
    return jsonify({"calls": [call.to_dict() for call in calls], "count": len(calls)})


@read_api.get("/api/calls/<call_id>")
def get_call(call_id: str) -> Response:
    state = webhook_state()
    require_admin(state.settings)
    call = state.store.get(canonical_id(call_id))
    if call is None:
        raise NotFound(f"No call {call_id} is known to this receiver.")
    return jsonify(call.to_dict())
