"""Marshmallow schemas for what Graph POSTs to a calling bot.

The schemas declare the fields comms-webhook relies on, with their types, and accept everything else:
Graph adds fields and enum values over time, and answering 400 for one of them would lose a real call event.
Every schema therefore includes unknown fields as sent, and no enum is closed.

:func:`webhook.parse.load_notifications` is the one entry point: it takes the decoded JSON body and returns
validated :class:`~webhook.notification.Notification` objects, or raises :class:`~webhook.errors.PayloadError` naming
every field that was wrong; bodies as Graph sends them take the short way (:mod:`webhook.plain`), whose output
equals these schemas'.
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from .codes import as_int
from .model import CHANGE_TYPES, canonical_enum
from .notification import Notification
from .resources import ResourceError, parse_resource
from .roster import is_delta


class GraphInt(fields.Field[int]):
    """An integer sent as a JSON number or as a numeric string (``"code": "200"`` in the Delete-call docs)."""

    default_error_messages = {"invalid": "Not a valid integer."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        found = as_int(value)
        if found is None:
            raise self.make_error("invalid")
        return found


def _str() -> fields.String:
    return fields.String(allow_none=True)


class GraphSchema(Schema):
    """Base of every schema here: unknown fields are kept, declared fields may be null."""

    class Meta:
        unknown = INCLUDE


def one_sub_code(result: dict[str, Any]) -> dict[str, Any]:
    """A ``resultInfo`` with its subcode spelt one way downstream, ``subcode``: the transfer-failure examples
    spell it ``subCode`` (a copy then, without it; ``subcode`` wins when both are there)."""
    if "subCode" not in result:
        return result
    result = dict(result)
    sub_code = result.pop("subCode")
    result.setdefault("subcode", sub_code)
    return result


class ResultInfoSchema(GraphSchema):
    code = GraphInt(allow_none=True)
    subcode = GraphInt(allow_none=True)
    message = _str()

    @pre_load
    def _accept_sub_code(self, data: Any, **kwargs: Any) -> Any:
        return one_sub_code(data) if isinstance(data, dict) else data


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


class DeltaParticipantsSchema(GraphSchema):
    """``resourceData`` of a delta roster (``deltaParticipants``): who changed since the last roster, in order."""

    sequenceNumber = GraphInt(allow_none=True)
    participants = fields.List(fields.Nested(ParticipantSchema), allow_none=True)


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
_DELTA = DeltaParticipantsSchema()


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
        if kind in ("call", "participants") and is_delta(value):
            return _DELTA.load(value)
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
            return _PARTICIPANTS.load(roster)
    except ValidationError as exc:
        raise ValidationError(exc.messages, "resourceData") from exc
    return value  # a sub-resource we do not know yet: kept as sent


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
