"""Graph's result codes: one reading of its integers, and what a code means."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.builders import call_notification, envelope, result_info
from webhook.codes import as_int, explain
from webhook.errors import PayloadError
from webhook.parse import load_notifications


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        (200, 200),
        ("200", 200),
        (" -7 ", -7),
        ("+5", 5),
        (3.0, 3),
        (3.5, None),
        (True, None),
        ("+-5", None),  # int() refuses it: once a 500, now not an integer
        ("²", None),  # a digit to str.isdigit, not to int()
        ("1" * 21, None),
        ("", None),
        (None, None),
    ],
)
def test_an_integer_is_read_one_way_by_the_schemas_and_by_the_codes(sent: Any, read: int | None) -> None:
    assert as_int(sent) == read
    body = envelope(call_notification("c1", "established", result=result_info(sent, 0)))
    if read is None and sent is not None:
        with pytest.raises(PayloadError, match=r"resourceData\.resultInfo\.code: Not a valid integer"):
            load_notifications(body)
    else:
        (notification,) = load_notifications(body)
        assert notification.data["resultInfo"]["code"] == read


def test_a_code_given_as_text_is_explained_as_the_number() -> None:
    assert explain({"code": "+200", "subcode": "5001"}) == explain({"code": 200, "subcode": 5001})
