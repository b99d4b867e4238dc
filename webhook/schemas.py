"""Marshmallow schemas for what Graph POSTs to a calling bot.

The schemas declare the fields comms-webhook relies on, with their types, and accept everything else:
Graph adds fields and enum values over time, and answering 400 for one of them would lose a real call event.
Every schema therefore includes unknown fields as sent, and no enum is closed.

:func:`load_notifications` is the one entry point: it takes the decoded JSON body and returns validated
:class:`~webhook.model.Notification` objects, or raises :class:`~webhook.errors.PayloadError` naming every field
that was wrong.
"""

from __future__ import annotations

import math
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from .errors import PayloadError
from .model import CHANGE_TYPES, Notification, canonical_enum
from .resources import ResourceError, parse_resource


class GraphInt(fields.Field[int]):
    """An integer sent as a JSON number or as a numeric string (``"code": "200"`` in the Delete-call docs)."""

    default_error_messages = {"invalid": "Not a valid integer."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            if 0 < len(text) <= 20 and text.lstrip("+-").isdigit():
                return int(text)
        raise self.make_error("invalid")


def _str() -> fields.String:
    return fields.String(allow_none=True)


class GraphSchema(Schema):
    """Base of every schema here: unknown fields are kept, declared fields may be null."""

    class Meta:
        unknown = INCLUDE


class ResultInfoSchema(GraphSchema):
    code = GraphInt(allow_none=True)
    subcode = GraphInt(allow_none=True)
    message = _str()

    @pre_load
    def _accept_sub_code(self, data: Any, **kwargs: Any) -> Any:
        # Transfer-failure examples spell it "subCode"; one spelling downstream.
        if isinstance(data, dict) and "subCode" in data:
            data = dict(data)
            sub_code = data.pop("subCode")
            data.setdefault("subcode", sub_code)
        return data


class ToneInfoSchema(GraphSchema):
    tone = _str()
    sequenceId = GraphInt(allow_none=True)


class CallSchema(GraphSchema):
    """``resourceData`` of a notification about the call itself."""

    id = _str()
    state = _str()
    direction = _str()
    callChainId = _str()
    terminationReason = _str()
    resultInfo = fields.Nested(ResultInfoSchema, allow_none=True)
    toneInfo = fields.Nested(ToneInfoSchema, allow_none=True)
    mediaState = fields.Dict(allow_none=True)


class ParticipantSchema(GraphSchema):
    """One element of a roster notification's ``resourceData`` array. ``id`` may be null."""

    id = _str()
    info = fields.Dict(allow_none=True)
    isMuted = fields.Boolean(allow_none=True)
    isInLobby = fields.Boolean(allow_none=True)
    mediaStreams = fields.List(fields.Dict(), allow_none=True)
    rosterSequenceNumber = GraphInt(allow_none=True)
    removedState = fields.Dict(allow_none=True)


class OperationSchema(GraphSchema):
    """``resourceData`` of an operation result (playPrompt, record, invite, sendDtmfTones ...)."""

    id = _str()
    status = _str()
    clientContext = _str()
    completionReason = _str()
    resultInfo = fields.Nested(ResultInfoSchema, allow_none=True)


_CALL = CallSchema()
_PARTICIPANTS = ParticipantSchema(many=True)
_OPERATION = OperationSchema()


class NotificationSchema(GraphSchema):
    """A ``commsNotification``: dispatched on changeType, the resource URL and the shape of resourceData.

    The notification's own ``@odata.type`` is deliberately ignored (a beta docs example says
    ``#microsoft.graph.commsOperation``).
    """

    changeType = fields.String(required=True, validate=validate.Length(min=1))
    resourceUrl = fields.String()
    resource = fields.String()
    resourceData = fields.Raw(allow_none=True)

    @post_load
    def _to_notification(self, data: dict[str, Any], **kwargs: Any) -> Notification:
        url_field = "resourceUrl" if data.get("resourceUrl") else "resource"
        url = data.get(url_field)
        if not url:
            raise ValidationError(
                "A notification needs resourceUrl (or the legacy resource) naming the call.", "resourceUrl"
            )
        try:
            ref = parse_resource(url)
        except ResourceError as exc:
            raise ValidationError(str(exc), url_field) from exc
        resource_data = _load_resource_data(ref.kind, data.get("resourceData"))
        raw = dict(data)
        return Notification(
            change_type=canonical_enum(data["changeType"], CHANGE_TYPES),
            resource=ref,
            data=resource_data,
            raw=raw,
        )


def _load_resource_data(kind: str, value: Any) -> Any:
    try:
        if kind == "call":
            if value is None:
                return {}
            return _CALL.load(_expect_object(value, "a call"))
        if kind == "operation":
            if value is None:
                return {}
            return _OPERATION.load(_expect_object(value, "an operation"))
        if kind == "participants":
            if value is None:
                return []
            # A roster is an array; tolerate a lone participant object.
            roster = value if isinstance(value, list) else [_expect_object(value, "a roster")]
            plain = plain_roster(roster)
            return plain if plain is not None else _PARTICIPANTS.load(roster)
    except ValidationError as exc:
        raise ValidationError(exc.messages, "resourceData") from exc
    return value  # a sub-resource we do not know yet: kept as sent


#: ParticipantSchema's declared fields and the one JSON type each takes as it is (besides null).
_PARTICIPANT_TYPES = (
    ("id", str),
    ("info", dict),
    ("isMuted", bool),
    ("isInLobby", bool),
    ("mediaStreams", list),
    ("rosterSequenceNumber", int),
    ("removedState", dict),
)


def plain_roster(roster: list[Any]) -> list[dict[str, Any]] | None:
    """The roster as :class:`ParticipantSchema` loads it, without running it, when every entry is what Graph
    sends: each declared field null or of its JSON type (``mediaStreams`` a list of objects, the sequence
    number an integer); None otherwise, and the schema loads it (its messages say what is wrong).

    A roster is the one body that grows with the call (a 1,000-person meeting sends 1,000 entries on every
    mute), and the schema walks every field of every entry; for entries like these its output is the entry
    itself, which tests/test_schemas.py checks on every roster of the docs and the captured calls and on
    generated ones.
    """
    for entry in roster:
        if type(entry) is not dict:
            return None
        for name, kind in _PARTICIPANT_TYPES:
            value = entry.get(name)
            if value is not None and type(value) is not kind:
                return None
        streams = entry.get("mediaStreams")
        if streams is not None and any(type(stream) is not dict for stream in streams):
            return None
    return list(roster)  # the entries themselves: nothing downstream changes them


def _expect_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"resourceData of {what} notification must be an object.")
    return value


class EnvelopeSchema(GraphSchema):
    """``commsNotifications``: a batch in ``value``. The top-level ``@odata.type`` is not required."""

    value = fields.List(
        fields.Nested(NotificationSchema),
        required=True,
        validate=validate.Length(min=1, error="value must hold at least one notification."),
    )


_ENVELOPE = EnvelopeSchema()


def load_notifications(body: Any) -> list[Notification]:
    """Validate a decoded ``commsNotifications`` body and return its notifications in order.

    Raises :class:`PayloadError` (400) with the marshmallow messages in ``details`` when anything is wrong;
    a body is accepted or rejected whole.
    """
    if not isinstance(body, dict):
        raise PayloadError(
            f"The body must be a JSON object (a commsNotifications envelope), not {_json_type(body)}.",
            code="invalid_envelope",
        )
    try:
        loaded = _ENVELOPE.load(body)
    except ValidationError as exc:
        raise PayloadError(
            "The body is not a valid commsNotifications envelope: " + _summarize(exc.messages),
            details={"fields": _string_keys(exc.messages)},
        ) from exc
    return list(loaded["value"])


def _string_keys(messages: Any) -> Any:
    """Marshmallow keys list errors by index (ints); JSON objects need string keys, sortable together."""
    if isinstance(messages, dict):
        return {str(key): _string_keys(value) for key, value in messages.items()}
    if isinstance(messages, list):
        return [_string_keys(item) for item in messages]
    return messages


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _summarize(messages: Any, prefix: str = "") -> str:
    """Flatten marshmallow's nested messages into ``value.0.resourceData.state: Not a valid string.``."""
    if isinstance(messages, dict):
        parts = [
            _summarize(inner, f"{prefix}{key}." if key != "_schema" else prefix) for key, inner in messages.items()
        ]
        return "; ".join(part for part in parts if part)
    if isinstance(messages, list):
        if all(isinstance(item, str) for item in messages):
            return f"{prefix.rstrip('.') or 'body'}: {' '.join(messages)}"
        return "; ".join(_summarize(item, prefix) for item in messages)
    return f"{prefix.rstrip('.') or 'body'}: {messages}"
