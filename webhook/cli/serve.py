"""``comms-webhook serve``: the receiver under gunicorn, with the shipped settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

APP_FACTORY = "webhook:create_app()"


def default_bind() -> str:
    """``$PORT`` on every interface, as the Procfile binds; else 127.0.0.1:8000, for a trial on this machine."""
    port = os.environ.get("PORT", "").strip()
    return f"0.0.0.0:{port}" if port else "127.0.0.1:8000"


def default_workers() -> int:
    text = os.environ.get("WEB_CONCURRENCY", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else 2


@click.command()
@click.option("--bind", help="Address to listen on. Default: 0.0.0.0:$PORT when PORT is set, else 127.0.0.1:8000.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes. Default: $WEB_CONCURRENCY, else 2.")
def serve(bind: str | None, workers: int | None) -> None:
    """Start the receiver under gunicorn.

    Plugins named in WEBHOOK_PLUGINS are imported from the current directory too, as `flask run` does.
    """
    from ..app import create_app, load_settings
    from ..environment import data_dir
    from ..http import EXTENSION

    # Every worker and every later CLI command must use the same folder, wherever they are started from.
    os.environ["WEBHOOK_DATA_DIR"] = data_dir()
    # Build the app once here (settings, store, plugins), so that a mistake is one clear message, not a
    # traceback per worker; gunicorn's workers then build their own.
    settings = load_settings()
    create_app({"OUTBOX_SWEEP_SECONDS": 0}).extensions[EXTENSION].store.close()
    bind = bind or default_bind()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",  # timeouts, threads, graceful drain, metrics across workers; read as a file: the master
        str(Path(__file__).parent.parent / "gunicorn_conf.py"),  # process must not import the app
        "--bind",
        bind,
        "--workers",
        str(workers or default_workers()),
        APP_FACTORY,
    ]
    click.echo(
        f"comms-webhook: serving on http://{bind}/api/calls, store {settings.masked_store_url}, "
        f"data folder {settings.data_dir}",
        err=True,
    )
    sys.stderr.flush()
    os.execv(sys.executable, argv)
