"""Call lifecycles as Graph delivers them, following the sequences in Microsoft's docs.

Each scenario is the list of notification bodies one call produces, in the order Graph sends them, with the
state the call must end in and the transitions it goes through. Tests, benchmarks and load runs use them to
deliver realistic calls, duplicated and shuffled at will.
"""

from __future__ import annotations

import json
import random
import threading
import time
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
    participant,
    result_info,
    roster_notification,
    tone_notification,
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


def meeting_join(call_id: str) -> Scenario:
    """The bot joins a meeting; people join, mute and leave (rosters numbered); the meeting ends for the bot."""
    bot = participant(new_id(), "Bot", application=True)
    alice, bob = participant(new_id(), "Alice"), participant(new_id(), "Bob")

    def roster(number: int, *people: JSON) -> JSON:
        return envelope(roster_notification(call_id, [dict(p, rosterSequenceNumber=number) for p in people]))

    chat = {"@odata.type": "#microsoft.graph.chatInfo", "threadId": f"19:meeting_{call_id}@thread.v2", "messageId": "0"}
    return Scenario(
        "meeting_join",
        call_id,
        (
            envelope(call_notification(call_id, "establishing", direction="outgoing", chatInfo=chat)),
            envelope(call_notification(call_id, "established", direction="outgoing", chatInfo=chat)),
            roster(1, bot),
            roster(2, bot, alice),
            roster(3, bot, alice, bob),
            roster(4, bot, dict(alice, isMuted=True), bob),
            roster(5, bot, dict(alice, isMuted=True)),
            envelope(call_ended(call_id, result_info(200, 4097, "The call was ended by the other participant."))),
        ),
        "terminated",
        ("establishing", "established", "terminated"),
    )


def record_and_dtmf(call_id: str) -> Scenario:
    """An incoming call answered; audio comes up; a prompt, a recording and DTMF tones; the caller hangs up."""
    audio = {"@odata.type": "#microsoft.graph.callMediaState", "audio": "active"}
    return Scenario(
        "record_and_dtmf",
        call_id,
        (
            envelope(incoming_call(call_id)),
            envelope(call_notification(call_id, "establishing")),
            envelope(call_notification(call_id, "established")),
            envelope(call_notification(call_id, "established", mediaState=audio)),
            envelope(
                operation_notification(call_id, new_id(), "playPrompt", completion_reason="completedSuccessfully")
            ),
            envelope(tone_notification(call_id, "tone1", 1)),
            envelope(tone_notification(call_id, "tone5", 2)),
            envelope(
                operation_notification(
                    call_id, new_id(), "record", result=result_info(200, 8515, "Action completed, max record duration")
                )
            ),
            envelope(
                operation_notification(
                    call_id,
                    new_id(),
                    "sendDtmfTones",
                    completion_reason="mediaOperationCanceled",
                    result=result_info(400, 8508, "Action falied, the operation was cancelled."),
                )
            ),
            envelope(call_ended(call_id, result_info(200, 4097, "The call was ended by the other participant."))),
        ),
        "terminated",
        ("incoming", "establishing", "established", "terminated"),
    )


SCENARIOS: dict[str, Callable[[str], Scenario]] = {
    "answered_and_hung_up": answered_and_hung_up,
    "outgoing": outgoing,
    "rejected": rejected,
    "redirected": redirected,
    "transferred": transferred,
    "transfer_failed": transfer_failed,
    "meeting_join": meeting_join,
    "record_and_dtmf": record_and_dtmf,
}


def make_calls(count: int, *, seed: int = 0) -> list[Scenario]:
    """``count`` calls with fresh ids, the scenarios taken in turn (reproducible for a given seed)."""
    rng = random.Random(seed)
    names = sorted(SCENARIOS)
    return [SCENARIOS[names[i % len(names)]](_seeded_id(rng)) for i in range(count)]


def _seeded_id(rng: random.Random) -> str:
    value = f"{rng.getrandbits(128):032x}"
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def plan(scenarios: Sequence[Scenario], *, duplicates: float = 0.0, reorder: float = 0.0, seed: int = 0) -> list[JSON]:
    """The bodies of ``scenarios`` as an unreliable network delivers them, reproducibly for ``seed``.

    Each body is sent again later with probability ``duplicates``; each is swapped with its call's next body with
    probability ``reorder``; the calls are interleaved at random, each call otherwise keeping its order.
    """
    rng = random.Random(seed)
    lanes: list[list[JSON]] = []
    for scenario in scenarios:
        lane = list(scenario.bodies)
        for index in range(len(lane) - 1):
            if rng.random() < reorder:
                lane[index], lane[index + 1] = lane[index + 1], lane[index]
        for body in list(lane):
            if rng.random() < duplicates:
                lane.insert(rng.randint(lane.index(body) + 1, len(lane)), body)
        lanes.append(lane)
    weights = [len(lane) for lane in lanes]
    bodies: list[JSON] = []
    positions = [0] * len(lanes)
    while any(positions[i] < weights[i] for i in range(len(lanes))):
        open_lanes = [i for i in range(len(lanes)) if positions[i] < weights[i]]
        chosen = rng.choice(open_lanes)
        bodies.append(lanes[chosen][positions[chosen]])
        positions[chosen] += 1
    return bodies


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
    rate: float | None = None,
    latencies: list[float] | None = None,
) -> list[int]:
    """POST every body from ``concurrency`` threads; return the status of each, in body order.

    ``url`` may be several receivers: each body then goes to one of them at random (reproducible by ``seed``),
    as a load balancer would spread Graph's callbacks. A connection error counts as status 0. The threads take
    bodies from one shared queue, in the order given, interleaved as the servers answer. ``rate`` caps the
    requests started per second (an open-loop load); ``latencies``, when given, receives each request's seconds.
    """
    urls = [url] if isinstance(url, str) else list(url)
    rng = random.Random(seed)
    targets = [urls[0] if len(urls) == 1 else rng.choice(urls) for _ in bodies]
    payloads = [json.dumps(body).encode() for body in bodies]
    statuses = [0] * len(bodies)
    timings = [0.0] * len(bodies)
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()
    sent_headers = {"Content-Type": "application/json", **(headers or {})}
    started = time.perf_counter()

    def worker() -> None:
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            if rate:
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            request = urllib.request.Request(targets[index], data=payloads[index], headers=sent_headers, method="POST")
            begin = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    statuses[index] = response.status
            except urllib.error.HTTPError as exc:
                statuses[index] = exc.code
            except OSError:
                statuses[index] = 0
            timings[index] = time.perf_counter() - begin

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if latencies is not None:
        latencies.extend(timings)
    return statuses


@dataclass(frozen=True)
class Observed:
    """A scenario's call as the read API shows it after the run."""

    scenario: Scenario
    state: str | None
    states: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """The right final state, through states that really happened, in their order."""
        remaining = iter(self.scenario.states)
        in_order = all(any(state == expected for expected in remaining) for state in self.states)
        return self.state == self.scenario.final_state and in_order


def observe(scenarios: Sequence[Scenario], read: Callable[[str], JSON | None]) -> list[Observed]:
    """Read each scenario's call (``read(call_id)`` returns the read API's document, or None)."""
    observed = []
    for scenario in scenarios:
        doc = read(scenario.call_id) or {}
        states = tuple(step["to"] for step in doc.get("history") or [])
        observed.append(Observed(scenario, doc.get("state"), states))
    return observed


def report(observed: Sequence[Observed], statuses: Sequence[int]) -> tuple[list[str], bool]:
    """Lines comparing expected and observed final states per scenario, and whether everything matched."""
    lines = [f"{'scenario':24} {'calls':>5} {'expected':>12} {'as expected':>12}"]
    by_name: dict[str, list[Observed]] = {}
    for item in observed:
        by_name.setdefault(item.scenario.name, []).append(item)
    for name in sorted(by_name):
        items = by_name[name]
        good = sum(1 for item in items if item.ok)
        lines.append(f"{name:24} {len(items):>5} {items[0].scenario.final_state:>12} {good:>12}")
    wrong = [item for item in observed if not item.ok]
    for item in wrong[:20]:
        lines.append(
            f"MISMATCH {item.scenario.name} {item.scenario.call_id}: expected {item.scenario.final_state}, "
            f"observed {item.state} via {' > '.join(item.states) or 'nothing'}"
        )
    refused = [status for status in statuses if not 200 <= status < 300]
    good = len(observed) - len(wrong)
    lines.append(f"{len(statuses)} requests, {len(refused)} not 2xx; {good}/{len(observed)} calls as expected")
    return lines, not wrong and not refused
