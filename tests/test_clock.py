"""Time as the stores keep it: text that sorts as time does."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from webhook.clock import epoch, iso, utc_now


def _datetime_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_utc_now_is_what_datetime_writes_to_the_millisecond_across_seconds() -> None:
    seconds = set()
    while len(seconds) < 2:  # until a second has turned, and been written afresh
        before, now, after = _datetime_now(), utc_now(), _datetime_now()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
        assert before <= now <= after
        seconds.add(now[:19])


def test_iso_and_epoch_read_back_what_utc_now_writes() -> None:
    now = utc_now()
    seconds = epoch(now)
    assert seconds is not None
    assert iso(seconds) == now
