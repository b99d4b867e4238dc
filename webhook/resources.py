"""Resource URLs of call notifications, and the ids inside them.

Graph names the object a notification is about by a path: ``/communications/calls/{callId}``, its
``/participants``, or one of its ``/operations/{operationId}``. Published payloads also use the legacy
``/app/calls/...`` form, drop the leading slash, and spell the same GUID lower-case dashed or upper-case
undashed. :func:`parse_resource` accepts all of these and returns ids in one canonical spelling, so that one
call is one call whatever the spelling.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

#: Kinds of sub-resource :func:`parse_resource` understands; anything else below a call is ``"other"``.
ResourceKind = Literal["call", "participants", "operation", "other"]


_GUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
# Ids are path segments: no separators, whitespace or controls, and of a sane length.
_SEGMENT = re.compile(r"[A-Za-z0-9._~:@!$&'()*+,;=%-]{1,256}")
# Graph's own absolute URLs carry an API version before the path.
_VERSION_PREFIX = re.compile(r"^/(v1\.0|beta)(?=/)")


class ResourceError(ValueError):
    """The resource URL does not name a call; the message says what was expected."""


@dataclass(frozen=True)
class ResourceRef:
    """Where a notification points: the call, and which part of it.

    ``call_id`` and ``sub_id`` are canonical (see :func:`canonical_id`); ``path`` is the normalized path
    (``/communications/calls/...``) with the ids as they were sent.
    """

    call_id: str
    kind: ResourceKind
    path: str
    sub_id: str | None = None


def canonical_id(raw: str) -> str:
    """Return the canonical spelling of an id: GUIDs lower-case and dashed, anything else unchanged."""
    if _GUID.fullmatch(raw):
        hex32 = raw.replace("-", "").lower()
        return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"
    return raw


@functools.lru_cache(maxsize=4096)
def parse_resource(url: str) -> ResourceRef:
    """Parse a ``resourceUrl`` (or legacy ``resource``) into a :class:`ResourceRef`.

    Raises :class:`ResourceError` when the URL is not under ``/communications/calls/{id}`` or
    ``/app/calls/{id}``. The latest URLs read are remembered (a call's notifications name the same few), the
    errors not.
    """
    parts = _segments(url)
    if len(parts) < 3 or parts[0].lower() != "communications" or parts[1].lower() != "calls":
        raise ResourceError(
            f"{url!r} is not a call resource: expected /communications/calls/{{id}} (or the legacy /app/calls/{{id}})"
        )
    raw_call_id, rest = parts[2], parts[3:]
    for segment in [raw_call_id, *rest]:
        if not _SEGMENT.fullmatch(segment):
            raise ResourceError(f"{url!r} has an empty or malformed path segment {segment!r}")
    path = "/communications/calls/" + "/".join([raw_call_id, *rest])
    call_id = canonical_id(raw_call_id)
    if not rest:
        return ResourceRef(call_id, "call", path)
    head = rest[0].lower()
    if head == "participants" and len(rest) == 1:
        return ResourceRef(call_id, "participants", path)
    if head == "operations" and len(rest) == 2:
        return ResourceRef(call_id, "operation", path, canonical_id(rest[1]))
    return ResourceRef(call_id, "other", path, "/".join(rest))


def _segments(url: str) -> list[str]:
    """The path's segments, without scheme, host, Graph's version prefix or one trailing slash; the legacy
    ``/app/calls`` read as ``/communications/calls``."""
    text = url.strip()
    if text.lower().startswith(("https://", "http://")):
        text = _VERSION_PREFIX.sub("", urlsplit(text).path)
    parts = text.removeprefix("/").split("/")
    if parts and parts[-1] == "":
        parts.pop()  # one trailing slash is harmless
    if len(parts) >= 2 and parts[0].lower() == "app" and parts[1].lower() == "calls":
        parts = ["communications", *parts[1:]]
    return parts
