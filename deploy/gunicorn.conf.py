"""gunicorn settings for comms-webhook (used by the Procfile).

Environment: PORT (default 8000), WEB_CONCURRENCY (workers; default 2 x CPUs + 1, at most 8),
GUNICORN_THREADS (default 1). A worker is never killed mid-request before the store gives up on a busy write
(WEBHOOK_STORE_TIMEOUT_SECONDS, default 5 s): the timeout below is far above it.
"""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms scenario=%({scenario-id}i)s request=%({client-request-id}i)s'


def worker_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """Graceful shutdown: let deferred handlers already queued in this worker finish."""
    from webhook.delivery import drain_all

    drain_all()
