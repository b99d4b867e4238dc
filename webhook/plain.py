"""The short way: the notifications of a body as the schemas (:mod:`webhook.schemas`) would load it, without
running them, when every part they declare is what Graph sends. Which fields to check, and as which JSON type,
is read off the schemas themselves, so that a field added there is checked here too (or refused at import).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from .codes import as_int
from .model import CHANGE_TYPES, canonical_enum
from .notification import Notification
from .resources import ResourceError, parse_resource
from .roster import is_delta
from .schemas import (
    CallSchema,
    GraphInt,
    OperationSchema,
    ParticipantSchema,
    ResultInfoSchema,
    ToneInfoSchema,
    one_sub_code,
)

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
_PARTICIPANT_TYPES = _json_types(ParticipantSchema(many=True), lists=True)
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
_CALL_TYPES = _json_types(CallSchema(), handled=("resultInfo", "toneInfo"))
_OPERATION_TYPES = _json_types(OperationSchema(), handled=("resultInfo",))
_RESULT_TYPES = _json_types(ResultInfoSchema())
_TONE_TYPES = _json_types(ToneInfoSchema())


def _plain_fields(data: dict[str, Any], types: tuple[tuple[str, type], ...]) -> bool:
    for name, kind in types:
        value = data.get(name)
        if value is not None and type(value) is not kind:
            return False
    return True


def _plain_object(value: Any, types: tuple[tuple[str, type], ...]) -> bool:
    """Whether a nested object (or its absence) is what its schema, whose fields are ``types``, loads as itself:
    each field null or of its type."""
    if value is None:
        return True
    return type(value) is dict and _plain_fields(value, types)


def _plain_data(kind: str, value: Any) -> Any:
    """``resourceData`` as :func:`_load_resource_data` loads it, when it is as Graph sends it; ``_DECLINED``
    otherwise (the schemas load it then, and their messages say what is wrong)."""
    if is_delta(value):
        return _DECLINED  # rare: the schemas read its participants
    if kind in ("call", "operation"):
        if value is None:
            return {}
        call = kind == "call"
        sent = value.get("resultInfo") if type(value) is dict else None
        result = _plain_result(sent)
        if (
            result is not _DECLINED
            and _plain_object(value, _CALL_TYPES if call else _OPERATION_TYPES)
            and (not call or _plain_object(value.get("toneInfo"), _TONE_TYPES))
        ):
            loaded = dict(value)
            if result is not sent:
                loaded["resultInfo"] = result
            return loaded
        return _DECLINED
    if kind == "participants":
        if value is None:
            return []
        plain = plain_roster(value if type(value) is list else [value])
        return _DECLINED if plain is None else plain
    return value


_DECLINED = object()
#: The integer codes of a resultInfo, which the Delete-call page sends as numeric strings.
_RESULT_CODES = tuple(
    field.data_key or name for name, field in ResultInfoSchema().fields.items() if isinstance(field, GraphInt)
)


def _plain_result(sent: Any) -> Any:
    """A ``resultInfo`` (or its absence) as :class:`ResultInfoSchema` loads it, when it is as Graph sends it: its
    subcode spelt one way, its codes integers (numeric strings read as ``GraphInt`` reads them); ``_DECLINED``
    otherwise. A copy when anything changed."""
    if sent is None:
        return None
    if type(sent) is not dict:
        return _DECLINED
    result = one_sub_code(sent)  # as the schema's pre_load respells it
    for name in _RESULT_CODES:
        value = result.get(name)
        if type(value) is str:
            number = as_int(value)
            if number is None:
                return _DECLINED
            result = dict(result) if result is sent else result
            result[name] = number
    return result if _plain_fields(result, _RESULT_TYPES) else _DECLINED


def plain_notifications(body: Any) -> list[Notification] | None:
    """The notifications of ``body`` as :func:`load_notifications` returns them, without running the schemas,
    when every part the schemas declare is what Graph sends (strings as strings, integers as integers but for a
    resultInfo's codes, which may be numeric strings, a resource URL we read); None otherwise, and the schemas
    load the body (their messages say what is wrong).

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
