"""How long a whole call takes against the fake Graph: ring, answer, established, a prompt and its result, hang
up, terminating, terminated, all through a real receiver (JWT on, SQLite) on 127.0.0.1, driven by its handlers.

    python bench/fake_call.py [--calls 20]

Prints the median and the slowest, in seconds, and the median of a ring that nobody answers (the floor: one
notification delivered and acknowledged). Absolute times drift on shared machines: read them as an order.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from webhook import create_app, on  # noqa: E402
from webhook.fakegraph import FakeGraph  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    with tempfile.TemporaryDirectory() as folder, FakeGraph() as fake:
        app = create_app(
            {
                "APP_ID": fake.app_id,
                "OPENID_CONFIG_URL": fake.config_url,
                "STORE_URL": f"sqlite:///{folder}/bench.sqlite3",
                "JOURNAL_DIR": f"{folder}/journal",
                "LOG_LEVEL": "warning",
                "OUTBOX_SWEEP_SECONDS": 0,
            }
        )
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        fake.callback_url = f"http://127.0.0.1:{server.server_port}/api/calls"
        graph = requests.Session()
        graph.headers["Authorization"] = f"Bearer {fake.app_token()}"
        calls = f"{fake.graph_url}/communications/calls"
        media = {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}

        def answer(call: Any) -> None:
            body = {"callbackUri": fake.callback_url, "acceptedModalities": ["audio"], "mediaConfig": media}
            graph.post(f"{calls}/{call.id}/answer", json=body, timeout=5)

        def greet(call: Any) -> None:
            prompt = {"prompts": [{"mediaInfo": {"uri": "https://bot/hi.wav"}}]}
            graph.post(f"{calls}/{call.id}/playPrompt", json=prompt, timeout=5)

        def hang_up(call: Any) -> None:
            graph.delete(f"{calls}/{call.id}", timeout=5)

        floors = []
        for _ in range(args.calls):
            started = time.perf_counter()
            fake.ring()
            floors.append(time.perf_counter() - started)
        on.call_state("incoming")(answer)
        on.media_active(greet)
        on.operation("playPrompt")(hang_up)
        whole = []
        for _ in range(args.calls):
            started = time.perf_counter()
            call = fake.ring()
            fake.settle()
            whole.append(time.perf_counter() - started)
            assert call.state == "terminated", call.history
        server.shutdown()
    print(
        f"whole call (7 notifications, 3 requests): median {statistics.median(whole):.3f} s, slowest {max(whole):.3f} s"
    )
    print(f"one notification, acknowledged: median {statistics.median(floors) * 1000:.1f} ms ({args.calls} calls each)")


if __name__ == "__main__":
    main()
