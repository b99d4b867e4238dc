"""Throughput of comms-webhook under gunicorn on SQLite and on Redis, as ratios to a bare Flask endpoint.

    python bench/gunicorn_load.py [--calls 200] [--workers 4] [--concurrency 16] [--repeat 3] [--redis URL]

Each repetition starts each server in turn with the same gunicorn settings and sends it the same load: the
calls of the docs' lifecycles, each notification twice, shuffled (the load of tests/test_gunicorn.py). Prints
requests per second for each (median of the repetitions) and the ratio to the bare endpoint, and writes them
to bench/results/. Redis: --redis, else 127.0.0.1:6379 when it answers, else a redis-server started here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.support import Gunicorn, RedisServer, redis_answers  # noqa: E402
from webhook.simulate import delivery, make_calls, send_all  # noqa: E402

ADMIN = {"Authorization": "Bearer bench"}


def run_once(app: str, env: dict[str, str], bodies: list[dict[str, object]], args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as folder:
        env = {key: value.replace("{tmp}", folder) for key, value in env.items()}
        server = Gunicorn(app, workers=args.workers, env=env, log=Path(folder) / "gunicorn.log")
        try:
            if app.startswith("webhook"):
                server.wait_ready("/api/calls?limit=1", ADMIN)
            else:
                _wait_post(server)
            started = time.perf_counter()
            statuses = send_all(server.url + "/api/calls", bodies, concurrency=args.concurrency)
            elapsed = time.perf_counter() - started
        finally:
            server.stop()
    bad = [status for status in statuses if status != 202]
    if bad:
        raise SystemExit(f"{app}: {len(bad)} requests were not answered 202: {sorted(set(bad))}")
    return len(bodies) / elapsed


def _wait_post(server: Gunicorn) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if send_all(server.url + "/api/calls", [{}], concurrency=1) == [202]:
            return
        time.sleep(0.1)
    raise SystemExit("the bare endpoint did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    bodies = delivery(make_calls(args.calls, seed=1), copies=2, seed=1)
    with tempfile.TemporaryDirectory() as redis_folder:
        own_redis = None
        redis_url = args.redis
        if not redis_answers(redis_url):
            own_redis = RedisServer(Path(redis_folder)).start()
            redis_url = own_redis.url
        try:
            results = measure(bodies, args, redis_url)
        finally:
            if own_redis is not None:
                own_redis.stop()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "gunicorn_load.json").write_text(json.dumps(results, indent=2))
    print(f"{'endpoint':28} {'req/s':>8} {'ratio':>6}")
    for name, row in results["endpoints"].items():
        print(f"{name:28} {row['rps']:>8} {row['ratio']:>6}")
    print(
        f"{len(bodies)} requests per run, {args.workers} workers, {args.concurrency} client threads, "
        f"median of {args.repeat}"
    )


def forget(redis_url: str, prefix: str) -> None:
    """Leave the shared Redis as it was: drop this run's keys."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


def measure(bodies: list[dict[str, object]], args: argparse.Namespace, redis_url: str) -> dict[str, object]:
    common = {"WEBHOOK_AUTH": "disabled", "WEBHOOK_ADMIN_TOKEN": "bench"}
    targets = {
        "bare Flask": ("bench.bare:create_app()", {}),
        "comms-webhook (SQLite)": ("webhook:create_app()", {**common, "WEBHOOK_STORE_URL": "sqlite:///{tmp}/c.db"}),
        "comms-webhook (Redis)": (
            "webhook:create_app()",
            {**common, "WEBHOOK_STORE_URL": redis_url, "WEBHOOK_REDIS_PREFIX": "bench-{run}"},
        ),
    }
    runs: dict[str, list[float]] = {name: [] for name in targets}
    for repetition in range(args.repeat):
        for name, (app, env) in targets.items():
            env = {key: value.replace("{run}", f"{time.time_ns()}-{repetition}") for key, value in env.items()}
            runs[name].append(run_once(app, env, bodies, args))
            if "WEBHOOK_REDIS_PREFIX" in env:
                forget(redis_url, env["WEBHOOK_REDIS_PREFIX"])
    bare = statistics.median(runs["bare Flask"])
    return {
        "requests": len(bodies),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "endpoints": {
            name: {
                "rps": round(statistics.median(values), 1),
                "ratio": round(statistics.median(values) / bare, 3),
                "runs": [round(v, 1) for v in values],
            }
            for name, values in runs.items()
        },
    }


if __name__ == "__main__":
    main()
