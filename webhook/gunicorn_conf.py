"""gunicorn settings for comms-webhook: ``comms-webhook serve`` passes this file to gunicorn, and
``deploy/gunicorn.conf.py`` (the Procfile, the Dockerfile, the systemd unit) reads it. gunicorn loads it as a
file, not as ``webhook.gunicorn_conf``: the master process must not import the app (nor create its metrics).

Environment: PORT (default 8000), WEB_CONCURRENCY (workers; default 2 x CPUs + 1, at most 8),
GUNICORN_THREADS (threads per worker, default 32), WEBHOOK_STORE_TIMEOUT_SECONDS (read here to size the
worker timeout), WEBHOOK_DATA_DIR (the data folder, default ./instance), PROMETHEUS_MULTIPROC_DIR (where
workers keep their metrics; default <data folder>/metrics).

Threaded workers (gthread), because a sync worker is held by one slow client for the whole ``timeout``: eight
sockets trickling their headers a byte a second kept Graph's callbacks waiting 30 s. A thread is held instead,
and gunicorn's main loop keeps accepting; each worker survives ``threads - 1`` such sockets. Request bodies that
stall are cut by WEBHOOK_BODY_TIMEOUT_SECONDS (see http.py). Behind a buffering proxy (nginx, as in
deploy/) no slow client ever reaches gunicorn.
"""

import multiprocessing
import os
import shutil
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))

# A worker is never killed mid-request before the store has given up on a busy write (each notification of a
# batch may wait that long), nor before Graph does: sized from the store's timeout, at least 30 s.
_store_timeout = float(os.environ.get("WEBHOOK_STORE_TIMEOUT_SECONDS", "5"))
timeout = max(30, int(_store_timeout * 4) + 10)
graceful_timeout = 30  # deferred handlers drain within this on SIGTERM (worker_exit below)
keepalive = 5

# No access log of gunicorn's own: the app writes one JSON line per request, with Graph's correlation headers
# (what Microsoft support asks for) cut to a sane length, where gunicorn's would copy any header whole.
accesslog = None

# Everything the receiver writes lives in one data folder (webhook.settings.data_dir, computed the same way here:
# importing webhook would import the app into the master). Made absolute once, for every worker.
_data_dir = os.path.abspath(os.environ.get("WEBHOOK_DATA_DIR", "").strip() or "instance")
os.environ["WEBHOOK_DATA_DIR"] = _data_dir

# gunicorn's control socket (gunicornc) in the data folder too: its default is under $HOME, which the systemd
# unit hides (ProtectHome) and a container's user may not have.
control_socket = os.path.join(_data_dir, "gunicorn.ctl")

# Prometheus multiprocess mode: each worker writes its counters to this folder, /metrics adds them up.
_own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(_data_dir, "metrics")


__all__ = [
    "accesslog",
    "bind",
    "child_exit",
    "control_socket",
    "graceful_timeout",
    "keepalive",
    "on_exit",
    "on_starting",
    "threads",
    "timeout",
    "worker_class",
    "worker_exit",
    "workers",
]


def on_starting(server: Any) -> None:
    """A fresh metrics folder per server start: counts of workers from an earlier run must not linger. Only the
    metrics files are removed, never a folder the user named."""
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    try:
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.endswith(".db"):
                os.remove(os.path.join(folder, name))
    except OSError as exc:
        raise SystemExit(
            f"comms-webhook: cannot write the metrics folder {folder}: {exc}. Set WEBHOOK_DATA_DIR (or "
            "PROMETHEUS_MULTIPROC_DIR) to a folder this user can write."
        ) from exc


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges stop counting (its counters stay, as Prometheus expects)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def worker_exit(server: Any, worker: Any) -> None:
    """Graceful shutdown: let deferred handlers already queued in this worker finish."""
    from webhook.delivery import drain_all

    drain_all()


def on_exit(server: Any) -> None:
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
