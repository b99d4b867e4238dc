"""The JSON codec: msgspec where it agrees with the standard library, the standard library where it declines."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, strategies as st

from webhook import codec
from webhook.errors import PayloadError
from webhook.receiver import MAX_JSON_DEPTH, decode_body

from .support import PAYLOADS

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # of any size: msgspec decodes those beyond 64 bits as Python does
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),  # lone surrogates included: msgspec declines their escapes, json reads them
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)


def exactly(value: Any) -> str:
    """What tells JSON values apart that ``==`` does not (``1 == 1.0 == True``, ``0.0 == -0.0``)."""
    return repr(value)


@given(JSON_VALUES)
def test_any_json_text_decodes_exactly_as_the_standard_library_decodes_it(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        assert exactly(codec.loads(text)) == exactly(json.loads(text))
        assert exactly(codec.loads(text.encode("utf-8", "surrogatepass"))) == exactly(json.loads(text))


@given(JSON_VALUES)
def test_what_the_encoder_writes_reads_back_as_it_was(value: Any) -> None:
    text = codec.dumps(value)
    assert exactly(codec.loads(text)) == exactly(value)
    assert exactly(json.loads(text)) == exactly(value)


@pytest.mark.payloads
def test_every_shared_payload_decodes_exactly_as_the_standard_library_decodes_it() -> None:
    paths = sorted(PAYLOADS.rglob("*.json"))
    assert len(paths) >= 43
    for path in paths:
        raw = path.read_bytes()
        assert exactly(codec.loads(raw)) == exactly(json.loads(raw)), path


@pytest.mark.parametrize(
    "raw",
    [
        b'\xef\xbb\xbf{"value": []}',  # a byte order mark
        '{"value": ["é"]}'.encode("utf-16"),  # json reads UTF-16 and UTF-32 bodies
        b'{"name": "\\ud83d"}',  # a lone surrogate escape
        b"[1e400]",  # a double's overflow: json's hooks decide
        b"[" * 2000 + b"]" * 2000,  # deeper than msgspec recurses
    ],
)
def test_what_msgspec_declines_the_standard_library_decides(raw: bytes) -> None:
    def by_json(data: bytes | str) -> Any:
        try:
            return ("value", json.loads(data))
        except (ValueError, RecursionError) as exc:
            return ("error", type(exc).__name__)

    with pytest.raises((msgspec.DecodeError, RecursionError)):
        msgspec.json.decode(raw)  # so the fallback is what answers
    assert codec.loads(raw, by_json) == by_json(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[1e400]", "The body is not valid JSON: 1e400 is too large to be a number."),
        (b'{"value": NaN}', "The body is not valid JSON: NaN is not valid JSON."),
        (b'{"value": [}', "The body is not valid JSON: Expecting value at line 1, column 12."),
        (b"\xff\xfe\x00", "The body is not valid JSON:"),
    ],
)
def test_a_body_msgspec_declines_gets_the_standard_library_s_message(raw: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_body(raw)
    assert str(caught.value).startswith(message)


def _reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_reference_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_reference_depth, value), default=0)
    return 0


@given(JSON_VALUES)
def test_depth_is_how_deeply_a_value_nests(value: Any) -> None:
    assert codec.depth(value, 64) == _reference_depth(value)


def test_depth_stops_counting_past_its_limit_and_the_body_is_refused() -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH + 10):
        deep = [deep]
    assert codec.depth(deep, MAX_JSON_DEPTH) == MAX_JSON_DEPTH + 1
    assert codec.depth(deep[0][0][0][0][0][0][0][0][0][0], MAX_JSON_DEPTH) == MAX_JSON_DEPTH
    with pytest.raises(PayloadError, match=f"nests deeper than {MAX_JSON_DEPTH} levels"):
        decode_body(json.dumps({"value": deep}).encode())
