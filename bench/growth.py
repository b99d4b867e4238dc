"""Does a notification cost more as its call grows older, larger, or the store fuller? In process, per engine.

    python bench/growth.py [--engines sqlite,redis] [--redis URL] [--store-sizes 1000,10000,100000] [--quick]

Three tables, each a median of per-notification costs (the body decoded from bytes, validated, applied in the
store, events delivered to one handler; auth and the journal off: they do not grow with the call):

- history: a call toggled between established and hold until it has N transitions, then timed on the next 40;
- store size: a fresh call's next notification (incoming, established) with N other calls in the store;
- roster: a meeting of N participants, one of whom toggles mute (Graph sends the whole roster each time, so the
  body grows with N): per notification and per participant carried.

Targets (issue "A call's cost does not grow with its life"): history and store size within 1.5x from the
smallest to the largest; at most 10 us per participant carried at 250 and 1,000. Absolute times drift on shared
machines: read the ratios, which come from one run of one process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import RedisServer, redis_answers  # noqa: E402
from webhook import create_app, on  # noqa: E402
from webhook.builders import call_notification, envelope, incoming_call, new_id, participant, roster_notification  # noqa: E402
from webhook.http import EXTENSION  # noqa: E402
from webhook.receiver import decode_body  # noqa: E402


def timed(send: Callable[[], Any], repeat: int) -> float:
    """Median seconds of ``send()`` over ``repeat`` runs."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        send()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


class Bench:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.app = create_app(
            {"AUTH": "disabled", "JOURNAL": "off", "OUTBOX_SWEEP_SECONDS": 0, "LOG_LEVEL": "warning", **settings}
        )
        self.receiver = self.app.extensions[EXTENSION].receiver
        self.store = self.app.extensions[EXTENSION].store

    def post(self, body: dict[str, Any]) -> None:
        self.receiver.receive(decode_body(json.dumps(body).encode()))


class Alternating:
    """Each call posts the next of ``bodies`` (encoded), round and round."""

    def __init__(self, bench: Bench, bodies: list[dict[str, Any]]) -> None:
        self.bench, self.bodies, self.turn = bench, [json.dumps(body).encode() for body in bodies], 0

    def __call__(self) -> None:
        self.bench.receiver.receive(decode_body(self.bodies[self.turn % len(self.bodies)]))
        self.turn += 1


def history(bench: Bench, lengths: list[int], repeat: int) -> dict[int, float]:
    call_id = new_id()
    bench.post(envelope(incoming_call(call_id)))
    move = Alternating(bench, [envelope(call_notification(call_id, state)) for state in ("established", "hold")])
    results = {}
    for length in lengths:
        while move.turn + 1 < length:  # the incoming call was the first transition
            move()
        results[length] = timed(move, repeat)
    return results


def store_size(bench: Bench, sizes: list[int], repeat: int) -> dict[int, float]:
    results: dict[int, float] = {}

    def fresh_call() -> None:
        call_id = new_id()
        bench.post(envelope(incoming_call(call_id)))
        bench.post(envelope(call_notification(call_id, "established")))

    filled = 0
    for size in sizes:
        while filled < size:
            bench.post(envelope(incoming_call(new_id())))
            filled += 1
        results[size] = timed(fresh_call, repeat) / 2
        filled += repeat
    return results


def roster(bench: Bench, sizes: list[int], repeat: int) -> dict[int, float]:
    results = {}
    for size in sizes:
        call_id = new_id()
        bench.post(envelope(incoming_call(call_id)))
        bench.post(envelope(call_notification(call_id, "established")))
        people = [participant(new_id(), f"person {index}") for index in range(size)]
        muted = [{**people[0], "isMuted": True}, *people[1:]]
        toggle = Alternating(bench, [envelope(roster_notification(call_id, p)) for p in (people, muted)])
        toggle()
        results[size] = timed(toggle, repeat)
    return results


def forget_redis(url: str, prefix: str) -> None:
    """Delete the keys this bench wrote to a Redis it did not start."""
    import redis

    try:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{prefix}*", count=1000):
            client.delete(key)
    except redis.RedisError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engines", default="sqlite,redis")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--store-sizes", default="1000,10000,100000")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a look")
    parser.add_argument("--only", choices=("history", "store", "roster"), help="one table")
    args = parser.parse_args()
    lengths = [10, 100, 1000] if args.quick else [10, 100, 1000, 5000]
    sizes = [1000, 5000] if args.quick else [int(n) for n in args.store_sizes.split(",")]
    rosters = [2, 50, 250] if args.quick else [2, 50, 250, 1000]
    repeat = 40

    @on.call_state
    def one_handler(call: Any) -> None:  # the bench's one handler (kept referenced: blinker holds it weakly)
        pass

    server = None
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for engine in args.engines.split(","):
            if engine == "sqlite":
                settings = [{"STORE_URL": f"sqlite:///{folder}/{name}.sqlite3"} for name in ("h", "s", "r")]
            else:
                url = args.redis
                if not redis_answers(url):
                    server = RedisServer(Path(folder)).start()
                    url = server.url
                settings = [{"STORE_URL": url, "REDIS_PREFIX": f"growth-{name}-{time.time_ns()}"} for name in "hsr"]
            wanted = [args.only] if args.only else ["history", "store", "roster"]
            report[engine] = {}
            if "history" in wanted:
                report[engine]["history"] = history(Bench(settings[0]), lengths, repeat)
            if "store" in wanted:
                report[engine]["store"] = store_size(Bench(settings[1]), sizes, repeat)
            if "roster" in wanted:
                report[engine]["roster"] = roster(Bench(settings[2]), rosters, repeat)
        if server is not None:
            server.stop()
        else:
            forget_redis(args.redis, "growth-")
    print_report(report)


def print_report(report: dict[str, Any]) -> None:
    for engine, tables in report.items():
        print(f"\n{engine}")
        for name, found in tables.items():
            smallest = found[min(found)]
            cells = "  ".join(f"{n:>6}: {t * 1e6:8.0f} us ({t / smallest:5.2f}x)" for n, t in found.items())
            print(f"  {name:8} {cells}")
        if "roster" in tables:
            per = {n: t / n * 1e6 for n, t in tables["roster"].items()}
            print("  roster, us per participant carried: " + "  ".join(f"{n}: {v:.1f}" for n, v in per.items()))


if __name__ == "__main__":
    main()
