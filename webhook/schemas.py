"""Marshmallow schemas for what Graph POSTs to a calling bot.

The schemas declare the fields comms-webhook relies on, with their types, and accept everything else:
Graph adds fields and enum values over time, and answering 400 for one of them would lose a real call event.
Every schema therefore includes unknown fields as sent, and no enum is closed.

:func:`load_notifications` is the one entry point: it takes the decoded JSON body and returns validated
:class:`~webhook.model.Notification` objects, or raises :class:`~webhook.errors.PayloadError` naming every field
that was wrong.
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from .codes import as_int
from .errors import PayloadError
from .model import CHANGE_TYPES, Notification, canonical_enum
from .resources import ResourceError, parse_resource


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


class ResultInfoSchema(GraphSchema):
    code = GraphInt(allow_none=True)
    subcode = GraphInt(allow_none=True)
    message = _str()

    #: What ``_accept_sub_code`` rewrites: a resultInfo carrying it is not loaded as itself.
    rewritten_keys = ("subCode",)

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
            return _PARTICIPANTS.load(roster)
    except ValidationError as exc:
        raise ValidationError(exc.messages, "resourceData") from exc
    return value  # a sub-resource we do not know yet: kept as sent


#: The JSON type a value of each kind of field here must have to be loaded as itself (besides null); a value of
#: any other type is converted (``"200"`` to 200) or refused by the field.
_AS_ITSELF: tuple[tuple[type[fields.Field[Any]], type], ...] = (
    (fields.String, str),
    (fields.Boolean, bool),
    (GraphInt, int),
    (fields.Dict, dict),
    (fields.List, list),
)


def _json_types(schema: Schema, handled: tuple[str, ...] = (), *, lists: bool = False) -> tuple[tuple[str, type], ...]:
    """Each declared field of ``schema`` with the one JSON type it takes as it is, read off the schema so that
    a field added there is checked by the short way too; ``handled`` names the fields the caller checks itself,
    ``lists`` says it checks that the items of lists (of objects) are objects. Raises TypeError at import for a
    field the short way cannot check: one no entry of :data:`_AS_ITSELF` covers, one that may not be null or
    must be there, a list the caller does not check."""
    found = []
    for name, field in schema.fields.items():
        if name in handled:
            continue
        kind = next((json_type for declared, json_type in _AS_ITSELF if isinstance(field, declared)), None)
        if (
            kind is None
            or not field.allow_none
            or field.required
            or (isinstance(field, fields.List) and not (lists and isinstance(field.inner, fields.Dict)))
        ):
            raise TypeError(f"{type(schema).__name__}.{name}: teach the short way (schemas.py) what loads as itself")
        found.append((field.data_key or name, kind))
    return tuple(found)


#: ParticipantSchema's declared fields and the one JSON type each takes as it is (besides null), and those that
#: are lists of objects (whose items must be objects too).
_PARTICIPANT_TYPES = _json_types(_PARTICIPANTS, lists=True)
_PARTICIPANT_LISTS = tuple(name for name, kind in _PARTICIPANT_TYPES if kind is list)


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
        for name in _PARTICIPANT_LISTS:  # mediaStreams
            items = entry.get(name)
            if items is not None and any(type(item) is not dict for item in items):
                return None
    return list(roster)  # the entries themselves: nothing downstream changes them


#: The fields of calls and operations (their nested objects aside, checked with their own schemas' fields).
_CALL_TYPES = _json_types(_CALL, handled=("resultInfo", "toneInfo"))
_OPERATION_TYPES = _json_types(_OPERATION, handled=("resultInfo",))
_RESULT_TYPES = _json_types(ResultInfoSchema())
_TONE_TYPES = _json_types(ToneInfoSchema())


def _plain_fields(data: dict[str, Any], types: tuple[tuple[str, type], ...]) -> bool:
    for name, kind in types:
        value = data.get(name)
        if value is not None and type(value) is not kind:
            return False
    return True


def _plain_object(value: Any, types: tuple[tuple[str, type], ...], rewritten: tuple[str, ...] = ()) -> bool:
    """Whether a nested object (or its absence) is what its schema, whose fields are ``types``, loads as itself:
    each field null or of its type, no key the schema's ``pre_load`` rewrites."""
    if value is None:
        return True
    return type(value) is dict and not any(key in value for key in rewritten) and _plain_fields(value, types)


def _plain_data(kind: str, value: Any) -> Any:
    """``resourceData`` as :func:`_load_resource_data` loads it, when it is as Graph sends it; ``_DECLINED``
    otherwise (the schemas load it then, and their messages say what is wrong)."""
    if kind in ("call", "operation"):
        if value is None:
            return {}
        call = kind == "call"
        if (
            _plain_object(value, _CALL_TYPES if call else _OPERATION_TYPES)
            and _plain_object(value.get("resultInfo"), _RESULT_TYPES, ResultInfoSchema.rewritten_keys)
            and (not call or _plain_object(value.get("toneInfo"), _TONE_TYPES))
        ):
            return dict(value)
        return _DECLINED
    if kind == "participants":
        if value is None:
            return []
        plain = plain_roster(value if type(value) is list else [value])
        return _DECLINED if plain is None else plain
    return value


_DECLINED = object()


def plain_notifications(body: Any) -> list[Notification] | None:
    """The notifications of ``body`` as :func:`load_notifications` returns them, without running the schemas,
    when every part the schemas declare is what Graph sends (strings as strings, integer codes as integers, a
    resource URL we read); None otherwise, and the schemas load the body (their messages say what is wrong).

    Marshmallow walks every declared field of every nested schema (~100 us a body); for bodies like these its
    output equals its input, which tests/test_schemas.py checks on every payload of the docs and of the
    captured calls and on generated bodies.
    """
    if type(body) is not dict:
        return None
    items = body.get("value")
    if type(items) is not list or not items:
        return None
    found = []
    for item in items:
        if type(item) is not dict:
            return None
        change_type, url, legacy = item.get("changeType"), item.get("resourceUrl"), item.get("resource")
        if type(change_type) is not str or not change_type:
            return None
        if ("resourceUrl" in item and type(url) is not str) or ("resource" in item and type(legacy) is not str):
            return None
        try:
            ref = parse_resource(url or legacy or "")
        except ResourceError:
            return None
        data = _plain_data(ref.kind, item.get("resourceData"))
        if data is _DECLINED:
            return None
        found.append(
            Notification(change_type=canonical_enum(change_type, CHANGE_TYPES), resource=ref, data=data, raw=dict(item))
        )
    return found


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
    plain = plain_notifications(body)
    if plain is not None:
        return plain
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
