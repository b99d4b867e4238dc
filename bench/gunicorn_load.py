"""Throughput of comms-webhook under gunicorn, as a ratio to a bare Flask endpoint in the same run.

    python bench/gunicorn_load.py [--calls 200] [--workers 4] [--concurrency 16] [--repeat 3]

Each repetition starts both servers with the same gunicorn settings and sends them the same load: the calls of
the docs' lifecycles, each notification twice, shuffled (the load of tests/test_gunicorn.py). Prints requests
per second for each and the ratio (median of the repetitions), and writes them to bench/results/.
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

from tests.support import Gunicorn  # noqa: E402
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
    args = parser.parse_args()

    bodies = delivery(make_calls(args.calls, seed=1), copies=2, seed=1)
    webhook_env = {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": "sqlite:///{tmp}/calls.sqlite3",
        "WEBHOOK_ADMIN_TOKEN": "bench",
    }
    bare, ours = [], []
    for _ in range(args.repeat):
        bare.append(run_once("bench.bare:create_app()", {}, bodies, args))
        ours.append(run_once("webhook:create_app()", webhook_env, bodies, args))
    result = {
        "requests": len(bodies),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "bare_flask_rps": round(statistics.median(bare), 1),
        "comms_webhook_sqlite_rps": round(statistics.median(ours), 1),
        "ratio": round(statistics.median(ours) / statistics.median(bare), 3),
        "runs": {"bare": [round(x, 1) for x in bare], "comms_webhook": [round(x, 1) for x in ours]},
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "gunicorn_load.json").write_text(json.dumps(result, indent=2))
    print(f"{'endpoint':28} {'req/s':>8}")
    print(f"{'bare Flask':28} {result['bare_flask_rps']:>8}")
    print(f"{'comms-webhook (SQLite)':28} {result['comms_webhook_sqlite_rps']:>8}")
    print(
        f"ratio {result['ratio']} over {len(bodies)} requests, {args.workers} workers, "
        f"{args.concurrency} client threads, median of {args.repeat}"
    )


if __name__ == "__main__":
    main()
