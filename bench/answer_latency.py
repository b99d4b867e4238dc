"""How long from Graph's incoming-call notification to Graph receiving the bot's answer, under load.

    python bench/answer_latency.py [--calls 40] [--workers 4] [--concurrency 16]

A real gunicorn with the shipped settings (gthread, --workers), JWT verification on, SQLite (synchronous=full),
the journal, and bench/answering_plugin.py answering every call through the fake Graph (https, msal tokens).
Calls are rung one after another while 16 client threads send the benchmark's load (bench/run.py's: the docs'
lifecycles, each notification twice, shuffled) as fast as the receiver takes it. For each call: the time from
the fake Graph sending the incoming notification to the fake Graph receiving ``answer``. Three runs: the
answer in a handler before the 202 without load (the baseline), the same under load, and the answer in a
deferred handler under load, and the same behind 20 ms of other deferred work per transition (the lanes are
shared by the calls that hash to them: slow deferred handlers delay the answers queued behind them). Graph's
deadline is 15 s. Read the ratios to the baseline; absolute times drift.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import SHIPPED_GUNICORN, Gunicorn, free_port  # noqa: E402
from webhook.fakegraph import FakeGraph  # noqa: E402
from webhook.scenarios import make_calls  # noqa: E402
from webhook.simulate import delivery, send_all  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(args: argparse.Namespace, *, deferred: bool, load: bool, work: float = 0.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder, FakeGraph(tls=True) as fake:
        port = free_port()
        fake.callback_url = f"http://127.0.0.1:{port}/api/calls"
        env = {f"WEBHOOK_{name}": value for name, value in fake.settings().items()}
        env.update(
            {
                "WEBHOOK_DATA_DIR": folder,
                "WEBHOOK_PLUGINS": "bench.answering_plugin",
                "WEBHOOK_DISABLE_PLUGIN_AUTOLOAD": "1",
                "WEBHOOK_LOG_LEVEL": "warning",
                "WEBHOOK_KEEPALIVE_SECONDS": "0",
                "BENCH_ANSWER_DEFERRED": "1" if deferred else "0",
                "BENCH_DEFERRED_WORK_SECONDS": str(work),
            }
        )
        server = Gunicorn(
            "webhook:create_app()",
            workers=args.workers,
            threads=None,
            env=env,
            log=Path(folder) / "gunicorn.log",
            config=SHIPPED_GUNICORN,
            port=port,
        )
        stop = threading.Event()
        sent = [0]
        try:
            server.wait_ready("/readyz", {})
            for _ in range(3 * args.workers):  # each worker's first token and keys are fetched once: not measured
                fake.ring(source="bench warm-up")
            fake.settle()
            assert fake.keys is not None
            headers = {"Authorization": f"Bearer {fake.keys.token(aud=fake.app_id, expires_in=3600)}"}
            bodies = delivery(make_calls(200, seed=3), copies=2, seed=3)

            def loader() -> None:
                while not stop.is_set():
                    url = server.url + "/api/calls"
                    sent[0] += len(send_all(url, bodies, concurrency=args.concurrency, headers=headers))

            thread = threading.Thread(target=loader, daemon=True)
            if load:
                thread.start()
                time.sleep(1.0)
            started = time.perf_counter()
            latencies = []
            for index in range(args.calls):
                call = fake.ring(source=f"bench {index}")
                incoming = next(d for d in fake.deliveries if call.id in json.dumps(d.body))  # its first: created
                deadline = time.monotonic() + 20
                while not [r for r in fake.sent("answer") if r.call_id == call.id] and time.monotonic() < deadline:
                    time.sleep(0.002)
                answers = [r for r in fake.sent("answer") if r.call_id == call.id]
                if not answers:
                    raise SystemExit(f"call {index} was never answered: {server.log.read_text()[-2000:]}")
                latencies.append(answers[0].at - incoming.at)
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            stop.set()
            if load:
                thread.join()
        finally:
            stop.set()
            server.stop()
    return {
        "median_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "load_rps": round(sent[0] / elapsed, 1) if load else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    results = {
        "before the 202, no load (baseline)": run(args, deferred=False, load=False),
        "before the 202, under load": run(args, deferred=False, load=True),
        "deferred, under load": run(args, deferred=True, load=True),
        "deferred, load, 20ms deferred work": run(args, deferred=True, load=True, work=0.02),
    }
    baseline = results["before the 202, no load (baseline)"]["median_ms"]
    print(f"{'answer':36} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'x base':>7} {'load req/s':>11}")
    for name, found in results.items():
        ratio = found["median_ms"] / baseline if baseline else 0
        print(
            f"{name:36} {found['median_ms']:>10} {found['p95_ms']:>8} {found['max_ms']:>8} {ratio:>7.2f} "
            f"{found['load_rps']:>11}"
        )
    print("Graph's deadline: 15000 ms")


if __name__ == "__main__":
    main()
