"""What a SQLite transition costs as the database's layout changes, in one process, batches alternated.

Each variant is a fresh store (SQLite, the default durability) with a page size and, optionally, without the
calls table's two ``seen_at`` indexes; batches of fresh calls' ``established`` are applied to each variant in
turn, 40 rounds, and each variant's per-batch time is divided by the first variant's in the same round (the
machine's drift cancels). Usage: ``python bench/sqlite_commit.py 4096 2048 1024 4096,noidx``.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webhook.builders import call_notification, envelope, new_id  # noqa: E402
from webhook.clock import utc_now  # noqa: E402
from webhook.parse import load_notifications  # noqa: E402
from webhook.receiver import decode_body  # noqa: E402
from webhook.store.base import Lease  # noqa: E402
from webhook.store.sqlite import SQLiteStore  # noqa: E402

_SEEN_AT_INDEXES = ("calls_heard", "calls_watched")


def open_variant(folder: str, variant: str) -> SQLiteStore:
    page_size, _, extra = variant.partition(",")
    path = f"{folder}/{variant}.db"
    created = sqlite3.connect(path)
    created.execute(f"PRAGMA page_size = {int(page_size)}")  # before the first write, or it is too late
    created.execute("PRAGMA journal_mode = WAL")
    created.close()
    store = SQLiteStore(path)
    store.open()
    if "noidx" in extra:
        for index in _SEEN_AT_INDEXES:
            store._connect().execute(f"DROP INDEX {index}")
    return store


def batch(store: SQLiteStore, lease: Lease, count: int = 200) -> float:
    """Microseconds per transition (each with one outbox row, completed as a handler would)."""
    bodies = [json.dumps(envelope(call_notification(new_id(), "established"))).encode() for _ in range(count)]
    notifications = [load_notifications(decode_body(body))[0] for body in bodies]
    started = time.perf_counter()
    for notification in notifications:
        decision = store.apply(notification, utc_now(), lease=lease)
        store.complete([event.id for event in decision.events if event.id is not None])
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    variants = sys.argv[1:] or ["4096", "2048", "1024", "4096,noidx"]
    lease = Lease("bench", time.time() + 3600, lambda event: True)
    with tempfile.TemporaryDirectory() as folder:
        stores = {variant: open_variant(folder, variant) for variant in variants}
        times: dict[str, list[float]] = {variant: [] for variant in variants}
        for _ in range(40):
            for variant, store in stores.items():
                times[variant].append(batch(store, lease))
        base = variants[0]
        for variant in variants:
            ratios = [mine / theirs for mine, theirs in zip(times[variant][5:], times[base][5:], strict=True)]
            print(
                f"{variant:14} median {statistics.median(times[variant][5:]):7.1f} us"
                f"  ratio to {base} {statistics.median(ratios):.3f}"
            )
        for store in stores.values():
            store.close()


if __name__ == "__main__":
    main()
