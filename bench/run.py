"""The benchmark: comms-webhook against a bare Flask endpoint, under the same gunicorn, in one run.

    python bench/run.py [--calls 200] [--workers 4] [--threads N] [--concurrency 16] [--repeat 3] [--redis URL]
                        [--quick]

Endpoints, each started in turn under the shipped gunicorn settings (deploy/gunicorn.conf.py: gthread workers of
32 threads, unless ``--threads`` says otherwise; 1 is gunicorn's sync worker), with ``--workers`` workers:

- bare Flask: reads the body and answers 202, our physical limit;
- comms-webhook, everything on, on SQLite: JWT verification against a local key (JWKS served here), the
  journal, one handler (bench/handler_plugin.py); with the default WEBHOOK_SQLITE_SYNCHRONOUS=normal, then with
  full (a disk flush per commit);
- the same on Redis (--redis, else 127.0.0.1:6379 when it answers, else a redis-server started here).

For each: peak throughput under a closed load (16 client threads, the docs' lifecycles, each notification
twice, shuffled), then latency at half of that peak under an open load (requests started at a fixed rate);
medians of the repetitions, the endpoints alternated in each repetition. Then an in-process microbenchmark of the
pipeline per notification, by stage, on fresh calls and on the same lifecycles (bench/stages.py). Prints a table
and writes bench/results/bench.json. Absolute numbers drift on shared machines: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.support import SHIPPED_GUNICORN, Gunicorn, RedisServer, redis_answers  # noqa: E402
from webhook.scenarios import make_calls  # noqa: E402
from webhook.simulate import delivery, send_all  # noqa: E402
from webhook.testing import LocalGraphKeys  # noqa: E402

APP_ID = "bench-bot"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wait_until_up(server: Gunicorn, body: dict[str, Any], headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while send_all(server.url + "/api/calls", [body], concurrency=1, headers=headers) != [202]:
        if time.monotonic() > deadline or server.process.poll() is not None:
            raise SystemExit(f"{server.log} says: {server.log.read_text()[-2000:]}")
        time.sleep(0.1)


def measure_endpoint(
    app: str, env: dict[str, str], headers: dict[str, str], bodies: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        env = {key: value.replace("{tmp}", folder) for key, value in env.items()}
        server = Gunicorn(
            app,
            workers=args.workers,
            threads=args.threads,
            env=env,
            log=Path(folder) / "gunicorn.log",
            config=SHIPPED_GUNICORN,
        )
        try:
            wait_until_up(
                server, {"value": [{"changeType": "updated", "resourceUrl": "/communications/calls/warm"}]}, headers
            )
            started = time.perf_counter()
            statuses = send_all(server.url + "/api/calls", bodies, concurrency=args.concurrency, headers=headers)
            peak = len(bodies) / (time.perf_counter() - started)
            bad = [s for s in statuses if s != 202]
            if bad:
                raise SystemExit(f"{app}: {len(bad)} requests not answered 202: {sorted(set(bad))}")
            latencies: list[float] = []
            paced = send_all(
                server.url + "/api/calls",
                bodies,
                concurrency=args.concurrency,
                headers=headers,
                rate=peak / 2,
                latencies=latencies,
            )
            assert set(paced) == {202}
        finally:
            server.stop()
    return {"rps": peak, "p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000}


def forget(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


def gunicorn_table(args: argparse.Namespace, redis_url: str, keys: LocalGraphKeys) -> dict[str, Any]:
    bodies = delivery(make_calls(args.calls, seed=1), copies=2, seed=1)
    signed = {"Authorization": f"Bearer {keys.token(aud=APP_ID, expires_in=6 * 3600)}"}
    full = {
        "WEBHOOK_APP_ID": APP_ID,
        "WEBHOOK_OPENID_CONFIG_URL": keys.config_url,
        "WEBHOOK_ADMIN_TOKEN": "bench",
        "WEBHOOK_JOURNAL_DIR": "{tmp}/journal",
        "WEBHOOK_PLUGINS": "bench.handler_plugin",
        "WEBHOOK_DISABLE_PLUGIN_AUTOLOAD": "1",
        "WEBHOOK_LOG_LEVEL": "info",  # the default: an access line per request, a line per transition
    }
    targets = {
        "bare Flask": ("bench.bare:create_app()", {}, {}),
        "comms-webhook SQLite": ("webhook:create_app()", {**full, "WEBHOOK_STORE_URL": "sqlite:///{tmp}/c.db"}, signed),
        "  same, sync=full": (
            "webhook:create_app()",
            {**full, "WEBHOOK_STORE_URL": "sqlite:///{tmp}/c.db", "WEBHOOK_SQLITE_SYNCHRONOUS": "full"},
            signed,
        ),
        "comms-webhook Redis": ("webhook:create_app()", {**full, "WEBHOOK_STORE_URL": redis_url}, signed),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for repetition in range(args.repeat):
        for name, (app, env, headers) in targets.items():
            if "Redis" in name:
                env = {**env, "WEBHOOK_REDIS_PREFIX": f"bench-{time.time_ns()}-{repetition}"}
            runs[name].append(measure_endpoint(app, env, headers, bodies, args))
            if "Redis" in name:
                forget(redis_url, env["WEBHOOK_REDIS_PREFIX"])
    table: dict[str, Any] = {}
    bare_rps = statistics.median(r["rps"] for r in runs["bare Flask"])
    for name, results in runs.items():
        rps = statistics.median(r["rps"] for r in results)
        table[name] = {
            "rps": round(rps, 1),
            "ratio": round(rps / bare_rps, 3),
            "p50_ms_at_half_peak": round(statistics.median(r["p50_ms"] for r in results), 2),
            "p99_ms_at_half_peak": round(statistics.median(r["p99_ms"] for r in results), 2),
            "runs_rps": [round(r["rps"], 1) for r in results],
        }
    return {
        "requests_per_run": len(bodies),
        "workers": args.workers,
        "threads": args.threads or "shipped (32)",
        "concurrency": args.concurrency,
        "repeat": args.repeat,
        "endpoints": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, help="threads per worker (default: the shipped settings' 32)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quick", action="store_true", help="the in-process stages only")
    args = parser.parse_args()

    from bench.stages import stages

    result: dict[str, Any] = {"stages": stages(), "stages_lifecycles": stages(traffic="lifecycles")}
    if not args.quick:
        with tempfile.TemporaryDirectory() as folder, LocalGraphKeys() as keys:
            own = None
            redis_url = args.redis
            if not redis_answers(redis_url):
                own = RedisServer(Path(folder)).start()
                redis_url = own.url
            try:
                result["gunicorn"] = gunicorn_table(args, redis_url, keys)
            finally:
                if own is not None:
                    own.stop()
        print(f"{'endpoint':24} {'req/s':>8} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8}   (latency at half of peak)")
        for name, row in result["gunicorn"]["endpoints"].items():
            print(
                f"{name:24} {row['rps']:>8} {row['ratio']:>6} {row['p50_ms_at_half_peak']:>8} "
                f"{row['p99_ms_at_half_peak']:>8}"
            )
        meta = result["gunicorn"]
        print(
            f"{meta['requests_per_run']} requests per run, {meta['workers']} workers of {meta['threads']} threads, "
            f"{meta['concurrency']} client threads, median of {meta['repeat']}"
        )
    print(f"\n{'stage (in process, SQLite)':28} {'us/notification:':>16} {'fresh calls':>12} {'lifecycles':>11}")
    for name, micros in result["stages"].items():
        print(f"{name:28} {'':>16} {micros:>12.1f} {result['stages_lifecycles'][name]:>11.1f}")
    fresh, whole = (sum(result[key].values()) for key in ("stages", "stages_lifecycles"))
    print(f"{'total':28} {'':>16} {fresh:>12.1f} {whole:>11.1f}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
