"""A whole request in process: comms-webhook's WSGI app against bare Flask's, alternated in one process.

    python bench/wsgi.py [--requests 2000] [--rounds 5] [--log-level info]

Each request is a fresh call's ``established`` notification, signed (a local key), journaled, applied in SQLite
with its default durability and delivered to one handler; logs go to /dev/null at ``--log-level``. No server and
no socket: what the app itself costs a worker, against what Flask alone costs (bench/bare.py). Prints the
median microseconds per request of each and their ratio; the rounds alternate the two, so that a noisy
neighbour slows both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from werkzeug.test import EnvironBuilder  # noqa: E402

from bench.bare import create_app as create_bare  # noqa: E402
from bench.stages import GRAPH_HEADERS  # noqa: E402
from webhook import create_app, on  # noqa: E402
from webhook.builders import call_notification, envelope, new_id  # noqa: E402
from webhook.testing import LocalGraphKeys  # noqa: E402


def environs(count: int, headers: dict[str, str]) -> list[dict[str, Any]]:
    return [
        EnvironBuilder(
            path="/api/calls",
            method="POST",
            data=json.dumps(envelope(call_notification(new_id(), "established"))),
            content_type="application/json",
            headers=headers,
        ).get_environ()
        for _ in range(count)
    ]


def per_request(app: Callable[..., Iterable[bytes]], requests: list[dict[str, Any]]) -> float:
    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        if not status.startswith("202"):
            raise SystemExit(f"answered {status}")

    started = time.perf_counter()
    for environ in requests:
        for _ in app(environ, start_response):
            pass
    return (time.perf_counter() - started) / len(requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, LocalGraphKeys() as keys:
        ours = create_app(
            {
                "APP_ID": "bench",
                "OPENID_CONFIG_URL": keys.config_url,
                "STORE_URL": f"sqlite:///{folder}/calls.db",
                "JOURNAL_DIR": f"{folder}/journal",
                "OUTBOX_SWEEP_SECONDS": 0,
                "LOG_LEVEL": args.log_level,
            }
        )
        # Our log handler writes to whatever sys.stderr is when a line is written.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
        bare = create_bare()
        heard: list[str] = []
        handler = on.call_state("established")(lambda call: heard.append(call.id))
        signed = {"Authorization": f"Bearer {keys.token(aud='bench')}", **GRAPH_HEADERS}
        per_request(ours.wsgi_app, environs(300, signed))  # keys fetched, files opened, caches warm
        per_request(bare.wsgi_app, environs(300, GRAPH_HEADERS))
        timings: dict[str, list[float]] = {"bare Flask": [], "comms-webhook": []}
        for _ in range(args.rounds):
            timings["bare Flask"].append(per_request(bare.wsgi_app, environs(args.requests, GRAPH_HEADERS)))
            timings["comms-webhook"].append(per_request(ours.wsgi_app, environs(args.requests, signed)))
        assert len(heard) == 300 + args.rounds * args.requests, "the handler missed notifications"
        handler.__name__  # noqa: B018 - keep the handler referenced for the whole run
    medians = {name: statistics.median(found) for name, found in timings.items()}
    for name, median in medians.items():
        print(f"{name:16} {median * 1e6:8.1f} us per request")
    print(f"ratio (bare / comms-webhook): {medians['bare Flask'] / medians['comms-webhook']:.3f}")


if __name__ == "__main__":
    main()
