"""Delivering calls to a receiver as Graph would: the scenarios' bodies (:mod:`webhook.scenarios`) planned
with duplicates and reordering, posted from many threads to one receiver or several, and the calls the
receiver ends up with compared with what the scenarios say.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .scenarios import Scenario
from .transport import HttpTarget, Unreachable

JSON = dict[str, Any]


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
    receivers = [HttpTarget(each) for each in urls]
    targets = [receivers[0] if len(receivers) == 1 else rng.choice(receivers) for _ in bodies]
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
            begin = time.perf_counter()
            try:
                statuses[index] = targets[index].post(payloads[index], sent_headers).status_code
            except Unreachable:
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
