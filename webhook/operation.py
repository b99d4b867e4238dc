"""What long-running actions take and give back: media prompts, and the :class:`Operation` Graph started,
whose result arrives later as a notification and is read from the store (so that ``wait()`` works across
workers and instances)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import GraphNotConfigured
from .model import Call
from .resources import canonical_id
from .store.base import CallStore

GRAPH = "#microsoft.graph."
JSON = dict[str, Any]


@dataclass(frozen=True)
class MediaPrompt:
    """A prompt to play: an audio file Graph can fetch (``uri``, https), cached under ``resource_id``."""

    uri: str
    resource_id: str | None = None

    def to_graph(self) -> JSON:
        info: JSON = {"@odata.type": GRAPH + "mediaInfo", "uri": self.uri}
        if self.resource_id:
            info["resourceId"] = self.resource_id
        return {"@odata.type": GRAPH + "mediaPrompt", "mediaInfo": info}


@dataclass(frozen=True)
class Operation:
    """A long-running operation Graph started (playPrompt, record, invite...): its result is notified later."""

    id: str
    type: str
    status: str
    client_context: str | None
    call_id: str
    result_info: JSON | None = None
    completion_reason: str | None = None
    store: CallStore | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_graph(cls, body: Any, call_id: str, kind: str, store: CallStore | None = None) -> Operation:
        body = body if isinstance(body, dict) else {}
        return cls(
            str(body.get("id") or ""),
            kind,
            str(body.get("status") or "running"),
            body.get("clientContext"),
            call_id,
            body.get("resultInfo"),
            body.get("completionReason"),
            store,
        )

    @property
    def done(self) -> bool:
        return self.status not in ("running", "notStarted")

    def wait(self, timeout: float = 30.0, *, poll: float = 0.05) -> Operation:
        """The operation once its result arrived: read from the store, so it works whichever worker or
        instance received the result. Raises ``TimeoutError`` when none came within ``timeout`` seconds (the
        result is still delivered to ``@on.operation`` handlers whenever it comes)."""
        if self.done:
            return self
        if self.store is None:
            raise GraphNotConfigured("Operation.wait() needs the receiver's store: use the actions of a handler")
        deadline = time.monotonic() + timeout
        while True:
            call = self.store.get(self.call_id)
            found = (call.operations if call is not None else {}).get(canonical_id(self.id))
            if found is not None and found.get("status") not in (None, "running", "notStarted"):
                return replace(
                    self,
                    status=str(found["status"]),
                    result_info=found.get("resultInfo"),
                    completion_reason=found.get("completionReason"),
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no result of {self.type} operation {self.id} on call {self.call_id} in {timeout}s")
            time.sleep(poll)


def wait_for_state(store: CallStore, call_id: str, state: str, timeout: float = 30.0, *, poll: float = 0.05) -> Call:
    """The call once the store has it in ``state`` (or ended): for handler code that must wait for a state.
    Raises ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while True:
        call = store.get(canonical_id(call_id))
        if call is not None and (call.state == state or call.state == "terminated"):
            return call
        if time.monotonic() >= deadline:
            current = call.state if call is not None else "unknown"
            raise TimeoutError(f"call {call_id} was not {state} within {timeout}s (it is {current})")
        time.sleep(poll)


def prompts_of(prompts: Iterable[str | MediaPrompt]) -> list[JSON]:
    return [(MediaPrompt(p) if isinstance(p, str) else p).to_graph() for p in prompts]
