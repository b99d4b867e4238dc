"""Per-request cost of verifying Graph's JWT with a cached key, against the same request with auth off.

Two costs: a token seen for the first time (signature checked: what a new Graph token costs once), and a token
already verified (Graph reuses its token across callbacks for up to an hour: the common case).

    python bench/auth_cost.py [--requests 2000] [--repeat 5]

Both apps run in this process on their own SQLite file and receive the same body (a duplicate after the first,
so the store's work is the same on both sides); the JWKS is served on 127.0.0.1 and fetched once. Alternates
the two sides over several rounds and prints medians, the difference per request and the ratio; also times
Verifier.verify() alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webhook import create_app  # noqa: E402
from webhook.builders import call_notification, envelope  # noqa: E402
from webhook.http import EXTENSION  # noqa: E402
from webhook.testing import LocalGraphKeys  # noqa: E402

APP_ID = "bench-app-id"


def per_request(client, body, headers, count: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per request; ``headers`` is one dict for every request, or a list of one dict per request."""
    each = headers if isinstance(headers, list) else [headers] * count
    started = time.perf_counter()
    for index in range(count):
        response = client.post("/api/calls", json=body, headers=each[index])
        assert response.status_code == 202, response.get_data()
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    body = envelope(call_notification("57dab8b1-894c-409a-b240-bd8beae78896", "established"))
    with tempfile.TemporaryDirectory() as folder, LocalGraphKeys() as keys:
        same = {"JOURNAL_DIR": f"{folder}/journal", "LOG_LEVEL": "warning"}  # both sides do the same work
        on = create_app(
            {
                "APP_ID": APP_ID,
                "OPENID_CONFIG_URL": keys.config_url,
                "STORE_URL": f"sqlite:///{folder}/on.sqlite3",
                **same,
            }
        )
        off = create_app({"AUTH": "disabled", "STORE_URL": f"sqlite:///{folder}/off.sqlite3", **same})
        token = keys.token(aud=APP_ID, expires_in=24 * 3600)
        auth = {"Authorization": f"Bearer {token}"}
        on_client, off_client = on.test_client(), off.test_client()
        per_request(on_client, body, auth, 50)  # warm up: fetch keys, create the call
        per_request(off_client, body, {}, 50)
        with_auth, fresh, without = [], [], []
        for _ in range(args.repeat):
            new_tokens = [
                {"Authorization": f"Bearer {keys.token(aud=APP_ID, claims={'jti': uuid.uuid4().hex})}"}
                for _ in range(args.requests)
            ]
            with_auth.append(per_request(on_client, body, auth, args.requests))
            fresh.append(per_request(on_client, body, new_tokens, args.requests))
            without.append(per_request(off_client, body, {}, args.requests))
        verifier = on.extensions[EXTENSION].verifier
        started = time.perf_counter()
        for _ in range(args.requests):
            verifier.verify(f"Bearer {token}")
        verify_only = (time.perf_counter() - started) / args.requests
        fetches = keys.fetches()
    on_ms, off_ms = statistics.median(with_auth) * 1000, statistics.median(without) * 1000
    fresh_ms = statistics.median(fresh) * 1000
    print(f"request, auth off:               {off_ms:.3f} ms")
    print(f"request, auth on, known token:   {on_ms:.3f} ms   (+{on_ms - off_ms:.3f} ms, ratio {on_ms / off_ms:.2f})")
    extra, ratio = fresh_ms - off_ms, fresh_ms / off_ms
    print(f"request, auth on, new token:     {fresh_ms:.3f} ms   (+{extra:.3f} ms, ratio {ratio:.2f})")
    print(f"Verifier.verify() of a known token: {verify_only * 1000:.3f} ms; JWKS fetched {fetches} time(s)")


if __name__ == "__main__":
    main()
