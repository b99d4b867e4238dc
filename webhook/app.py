"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import http, http_errors, http_read, logs
from .answer_guard import AnswerGuard
from .binding import Binder
from .bots import Bots
from .clock import utc_now
from .delivery import Delivery
from .environment import data_dir, environment_settings, unknown_environment_warnings
from .joining import JoinDecider
from .journal import Journal
from .plugins import load_plugins
from .receiver import Receiver
from .setting_types import PREFIX
from .settings import Settings
from .store import open_store
from .sweeper import Sweeper
from .upkeep import Upkeep

logger = logging.getLogger("webhook")


def new_flask_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask app of the receiver, its instance folder the data folder (:func:`webhook.settings.data_dir`):
    the store, the journal and what plugins keep in ``app.instance_path`` share one writable place."""
    return Flask("webhook", instance_path=data_dir(config), instance_relative_config=True)


def load_settings(config: Mapping[str, Any] | None = None, *, app: Flask | None = None) -> Settings:
    """Read and validate the settings ``create_app`` would use, without building the receiver.

    Given ``app``, its config is filled as a side effect (Flask's own settings may come from ``WEBHOOK_*``
    too); the default store lives in that app's instance folder.
    """
    app = app if app is not None else new_flask_app(config)
    # Flask decodes each WEBHOOK_* value as JSON (for its own settings and plugins'), which would turn
    # WEBHOOK_ADMIN_TOKEN=1e5 into 100000.0 and "null" into None: ours are read as the strings they are, and
    # parsed by their own settings.
    app.config.from_prefixed_env(PREFIX.rstrip("_"))
    app.config.update(environment_settings())
    if config:
        app.config.update(config)
    return Settings.from_mapping(app.config, instance_path=app.instance_path)


def create_app(config: Mapping[str, Any] | None = None, *, receiving: bool = True) -> Flask:
    """Build the receiver app.

    Settings come from ``WEBHOOK_*`` environment variables, then from ``config`` (names without the prefix,
    e.g. ``{"STORE_URL": "sqlite:////tmp/calls.sqlite3"}``). Raises :class:`~webhook.errors.ConfigError` naming
    the setting when a value is wrong. The store is opened (and created) here, but a store that cannot be used
    yet (locked, disk full, unreachable) does not stop the app: it answers 503 with ``Retry-After`` and
    ``/readyz`` fails until the store can be used, so that a gunicorn worker restarted during a brief fault
    boots, and recovers by itself.

    ``receiving=False`` builds the app to look at its store and plugins (what ``comms-webhook calls``,
    ``failures`` and ``plugins`` do): no callback is received, so no App ID is demanded, nothing is said about
    authentication, and no sweeper runs.
    """
    app = new_flask_app(config)
    settings = load_settings(config, app=app)
    if receiving:
        settings.check_auth()
    logs.configure(settings.log_level, settings.log_format)
    for warning in unknown_environment_warnings():
        logger.warning("%s", warning)
    # One byte of slack lets the view tell a body of exactly the limit from a longer stream (see http.py).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    if receiving and settings.auth == "disabled":
        logger.warning(
            "WEBHOOK_AUTH=disabled: callbacks are NOT authenticated. Anyone who can reach this URL can inject "
            "call notifications. Use this for local trials only, never in production."
        )
    store = open_store(settings.store_url, **settings.store_options())
    delivery = Delivery(
        store,
        slow_seconds=settings.slow_handler_seconds,
        deferred_workers=settings.deferred_workers,
        lease_seconds=settings.outbox_lease_seconds,
        clock=utc_now,
    )
    bots = Bots.from_settings(settings)
    delivery.binder = Binder(bots, store)
    upkeep = None
    if bots.configured:
        upkeep = Upkeep(
            delivery,
            bots.client_for,
            keepalive_seconds=settings.keepalive_seconds,
            resync_stale=settings.resync_stale == "on",
        )
    elif receiving and settings.keepalive_seconds > 0:
        logger.info(
            "no Graph credentials (WEBHOOK_CLIENT_SECRET or WEBHOOK_CLIENT_CERTIFICATE_PATH): calls are not kept "
            "alive nor resynced by comms-webhook; a bot that acts through its own Graph client keeps them alive"
        )
    guard = None
    if receiving:
        settings.check_answer_fallback(bots.configured)
        guard = AnswerGuard(
            store,
            bots.client_for if bots.configured else None,
            deadline_seconds=settings.answer_deadline_seconds,
            fallback=settings.answer_fallback,
            target=settings.answer_fallback_target,
        )
    plugins = load_plugins(app, settings.plugins, autoload=not settings.disable_plugin_autoload)
    journal = None
    if settings.journal == "on" or settings.journal_rejected == "on":
        journal = Journal(
            settings.journal_dir,
            max_bytes=settings.journal_max_bytes,
            retention_days=settings.journal_retention_days,
            fsync=settings.journal_fsync,
        )
    state = app.extensions[http.EXTENSION] = http.WebhookState(
        settings=settings,
        store=store,
        receiver=Receiver(
            store,
            delivery,
            max_notifications=settings.max_notifications_per_body,
            guard=guard,
            repairs=upkeep.repair_soon if upkeep is not None else None,
            joining=JoinDecider(
                timeout_seconds=settings.joining_timeout_seconds, default_response=settings.joining_default
            ),
        ),
        bots=bots,
        delivery=delivery,
        sweeper=Sweeper(
            delivery,
            sweep_seconds=settings.outbox_sweep_seconds,
            stale_after_seconds=settings.stale_after_seconds,
            upkeep=upkeep,
        ),
        plugins=tuple(plugins),
        journal=journal,
    )
    app.register_blueprint(http.bp)
    app.register_blueprint(http_read.read_api)
    http_errors.register_error_handlers(app)
    if settings.proxy_hops:
        # Trust exactly as many proxies as configured: more would let a client forge its address.
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]
    if receiving:
        # After the plugins: events recovered from stopped processes need their handlers connected.
        state.sweeper.start()
    return app
