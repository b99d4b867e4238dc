"""Call lifecycles as Graph delivers them, following the sequences in Microsoft's docs.

Each scenario is the list of notification bodies one call produces, in the order Graph sends them, with the
state the call must end in and the transitions it goes through. Tests, benchmarks and load runs use them to
deliver realistic calls, duplicated and shuffled at will.
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .builders import (
    call_ended,
    call_notification,
    envelope,
    incoming_call,
    new_id,
    operation_notification,
    result_info,
)

JSON = dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    """One call: its bodies in delivery order, its final state and the states it passes through in order."""

    name: str
    call_id: str
    bodies: tuple[JSON, ...]
    final_state: str
    states: tuple[str, ...]


def answered_and_hung_up(call_id: str) -> Scenario:
    """An incoming call answered by the bot, then hung up by the caller (Delete-call docs: codes as strings)."""
    return Scenario(
        "answered_and_hung_up",
        call_id,
        (
            envelope(incoming_call(call_id)),
            envelope(call_notification(call_id, "establishing")),
            envelope(call_notification(call_id, "established")),
            envelope(call_notification(call_id, "terminating")),
            envelope(call_ended(call_id, result_info("200", "5001", "The conversation has ended."))),
        ),
        "terminated",
        ("incoming", "establishing", "established", "terminating", "terminated"),
    )


def outgoing(call_id: str) -> Scenario:
    """A call the bot places, with a prompt played, ended by the bot."""
    return Scenario(
        "outgoing",
        call_id,
        (
            envelope(call_notification(call_id, "establishing", direction="outgoing")),
            envelope(call_notification(call_id, "established", direction="outgoing")),
            envelope(
                operation_notification(call_id, new_id(), "playPrompt", completion_reason="completedSuccessfully")
            ),
            envelope(call_ended(call_id, result_info(200, 7000, "Call ended by the application."))),
        ),
        "terminated",
        ("establishing", "established", "terminated"),
    )


def rejected(call_id: str) -> Scenario:
    """An incoming call the bot rejects: the ``deleted`` carries no state at all."""
    deleted = call_notification(call_id, None, change_type="deleted")
    return Scenario(
        "rejected",
        call_id,
        (envelope(incoming_call(call_id)), envelope(deleted)),
        "terminated",
        ("incoming", "terminated"),
    )


def redirected(call_id: str) -> Scenario:
    """An incoming call the bot redirects: ``deleted`` / ``terminated`` without resultInfo."""
    return Scenario(
        "redirected",
        call_id,
        (envelope(incoming_call(call_id)), envelope(call_ended(call_id))),
        "terminated",
        ("incoming", "terminated"),
    )


def transferred(call_id: str) -> Scenario:
    """A call the bot transfers: transferring, transferAccepted, then terminated with 0/7015."""
    return Scenario(
        "transferred",
        call_id,
        (
            envelope(incoming_call(call_id)),
            envelope(call_notification(call_id, "establishing")),
            envelope(call_notification(call_id, "established")),
            envelope(call_notification(call_id, "transferring")),
            envelope(call_notification(call_id, "transferAccepted")),
            envelope(call_ended(call_id, result_info(0, 7015, "GracefulTransferCompleted"))),
        ),
        "terminated",
        ("incoming", "establishing", "established", "transferring", "transferAccepted", "terminated"),
    )


def transfer_failed(call_id: str) -> Scenario:
    """A transfer that fails: back to ``established`` with resultInfo 500 and ``subCode`` 7000."""
    failed = call_notification(
        call_id,
        "established",
        result={"@odata.type": "#microsoft.graph.resultInfo", "code": 500, "subCode": 7000, "message": "failed"},
    )
    return Scenario(
        "transfer_failed",
        call_id,
        (
            envelope(incoming_call(call_id)),
            envelope(call_notification(call_id, "establishing")),
            envelope(call_notification(call_id, "established")),
            envelope(call_notification(call_id, "transferring")),
            envelope(failed),
        ),
        "established",
        ("incoming", "establishing", "established", "transferring", "established"),
    )


SCENARIOS: dict[str, Callable[[str], Scenario]] = {
    "answered_and_hung_up": answered_and_hung_up,
    "outgoing": outgoing,
    "rejected": rejected,
    "redirected": redirected,
    "transferred": transferred,
    "transfer_failed": transfer_failed,
}


def make_calls(count: int, *, seed: int = 0) -> list[Scenario]:
    """``count`` calls with fresh ids, the scenarios taken in turn (reproducible for a given seed)."""
    rng = random.Random(seed)
    names = sorted(SCENARIOS)
    return [SCENARIOS[names[i % len(names)]](_seeded_id(rng)) for i in range(count)]


def _seeded_id(rng: random.Random) -> str:
    value = f"{rng.getrandbits(128):032x}"
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def delivery(scenarios: list[Scenario], *, copies: int = 2, seed: int = 0) -> list[JSON]:
    """Every body of every scenario ``copies`` times, shuffled together: duplicated, reordered delivery."""
    bodies = [body for scenario in scenarios for body in scenario.bodies for _ in range(copies)]
    random.Random(seed).shuffle(bodies)
    return bodies


def send_all(
    url: str | Sequence[str],
    bodies: Sequence[JSON],
    *,
    concurrency: int = 16,
    headers: dict[str, str] | None = None,
    seed: int = 0,
) -> list[int]:
    """POST every body from ``concurrency`` threads; return the status of each, in body order.

    ``url`` may be several receivers: each body then goes to one of them at random (reproducible by ``seed``),
    as a load balancer would spread Graph's callbacks. A connection error counts as status 0. The threads take
    bodies from one shared queue, in the order given, interleaved as the servers answer.
    """
    urls = [url] if isinstance(url, str) else list(url)
    rng = random.Random(seed)
    targets = [urls[0] if len(urls) == 1 else rng.choice(urls) for _ in bodies]
    statuses = [0] * len(bodies)
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()
    sent_headers = {"Content-Type": "application/json", **(headers or {})}

    def worker() -> None:
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            request = urllib.request.Request(
                targets[index], data=json.dumps(bodies[index]).encode(), headers=sent_headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    statuses[index] = response.status
            except urllib.error.HTTPError as exc:
                statuses[index] = exc.code
            except OSError:
                statuses[index] = 0

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses
