"""The one handler of the benchmark: a small amount of work per ended call, as a real bot's would be."""

from typing import Any

from webhook import on

ENDED: list[str] = []


@on.call_state("terminated")
def remember_ended(call: Any) -> None:
    ENDED.append(call.id)
    del ENDED[:-100]
