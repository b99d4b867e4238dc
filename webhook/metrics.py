"""Prometheus metrics, correct across gunicorn workers.

Counters and histograms live in the process that counts them; with ``PROMETHEUS_MULTIPROC_DIR`` set (the
shipped ``deploy/gunicorn.conf.py`` sets it), every worker writes them to that folder and ``GET /metrics``,
whichever worker answers, adds them up. Call counts (active, stale) are read from the store at scrape time, so
they are the truth of every instance sharing it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

NAMESPACE = "comms_webhook"

notifications = Counter(
    "notifications_total",
    "Valid notifications, by resource kind and what they did.",
    ["kind", "outcome"],
    namespace=NAMESPACE,
)
rejections = Counter("rejections_total", "Requests refused with a 4xx, by error code.", ["reason"], namespace=NAMESPACE)
auth_failures = Counter(
    "auth_failures_total", "Callbacks refused by token verification, by reason.", ["reason"], namespace=NAMESPACE
)
transitions = Counter("transitions_total", "Applied call transitions, by new state.", ["state"], namespace=NAMESPACE)
handler_calls = Counter("handler_calls_total", "Handler runs, by handler.", ["handler"], namespace=NAMESPACE)
handler_failures = Counter(
    "handler_failures_total", "Handler runs that raised, by handler.", ["handler"], namespace=NAMESPACE
)
handler_seconds = Histogram(
    "handler_duration_seconds",
    "Time spent in each handler.",
    ["handler"],
    namespace=NAMESPACE,
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
)
request_seconds = Histogram(
    "request_duration_seconds",
    "Time to answer a request, by endpoint and status.",
    ["endpoint", "status"],
    namespace=NAMESPACE,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
graph_requests = Counter(
    "graph_requests_total",
    "Requests to Graph, by action and status (0: no answer).",
    ["action", "status"],
    namespace=NAMESPACE,
)
graph_seconds = Histogram(
    "graph_request_duration_seconds",
    "Time of each request to Graph, by action.",
    ["action"],
    namespace=NAMESPACE,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
graph_retries = Counter(
    "graph_retries_total",
    "Requests to Graph sent again because Graph said it did not process them.",
    ["action"],
    namespace=NAMESPACE,
)
legacy_handshakes = Counter(
    "legacy_handshakes_total",
    "Callbacks in the old Bot Framework calling format, answered 204 so that Graph sends them in its own.",
    namespace=NAMESPACE,
)
journal_errors = Counter("journal_errors_total", "Journal appends that failed.", namespace=NAMESPACE)
store_errors = Counter("store_errors_total", "Requests the store could not serve (503).", namespace=NAMESPACE)
stale_marked = Counter(
    "calls_marked_stale_total", "Calls found with no notification for too long.", namespace=NAMESPACE
)
keepalives = Counter(
    "keepalives_total",
    "Managed keepAlive requests, by outcome (sent, gone: Graph no longer had the call, failed: tried again soon).",
    ["outcome"],
    namespace=NAMESPACE,
)
resyncs = Counter(
    "resyncs_total",
    "Calls read back from Graph, by outcome (refreshed, ended: Graph no longer had them, failed).",
    ["outcome"],
    namespace=NAMESPACE,
)
answer_deadlines = Counter(
    "answer_deadlines_total",
    "Incoming calls no handler replied to by WEBHOOK_ANSWER_DEADLINE_SECONDS, by fallback (none, reject, redirect) "
    "and outcome (logged, sent, failed).",
    ["fallback", "outcome"],
    namespace=NAMESPACE,
)
participant_joining = Counter(
    "participant_joining_total",
    "Answers to participantJoiningNotification, by response (accept, reject, inviteNewBot) and by whom "
    "(handler, default: no handler decided, timeout: none decided in time).",
    ["response", "by"],
    namespace=NAMESPACE,
)
redirects = Counter(
    "redirects_total",
    "Incoming calls sent on to another region or instance (route_incoming), by status (302, 307).",
    ["status"],
    namespace=NAMESPACE,
)
roster_repairs = Counter(
    "roster_repairs_total",
    "Rosters read back from Graph after a gap in a delta roster, by outcome (repaired, failed).",
    ["outcome"],
    namespace=NAMESPACE,
)
# Their outcomes are known: exported at 0 from the start, so that a rate is 0 rather than absent.
for _outcome in ("sent", "gone", "failed"):
    keepalives.labels(_outcome)
for _outcome in ("refreshed", "ended", "failed"):
    resyncs.labels(_outcome)


_children: dict[tuple[object, tuple[str, ...]], Any] = {}


def child(metric: Counter | Histogram, *values: str) -> Any:
    """``metric.labels(*values)``, kept once made: ``labels`` checks its arguments and takes a lock on every call,
    several times per request. Only for labels of a few known values (a kind, an outcome, a handler's name): the
    children are kept for the process's life. Safe across a fork: a child's value notices a new process itself."""
    key = (metric, values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found


class StoreGauges(Collector):
    """Active and stale calls, counted by the store when Prometheus scrapes."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self.count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, documentation in (
            ("active", "Calls that have not ended."),
            ("stale", "Active calls with no notification for longer than WEBHOOK_STALE_AFTER_SECONDS."),
        ):
            family = GaugeMetricFamily(f"{NAMESPACE}_{name}_calls", documentation)
            try:
                family.add_metric([], self.count(name))
            except Exception:
                continue
            yield family


def render(count: Callable[[str], int]) -> tuple[bytes, str]:
    """The exposition text: this process's metrics, or every worker's in multiprocess mode, plus the gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY as counted
    gauges = CollectorRegistry()
    gauges.register(StoreGauges(count))
    return generate_latest(counted) + generate_latest(gauges), CONTENT_TYPE_LATEST
