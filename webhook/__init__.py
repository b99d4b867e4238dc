"""comms-webhook: the callback URL of a Microsoft Graph calling bot.

``create_app()`` builds the Flask receiver; the signals in :mod:`webhook.signals` tell your code what happened
to each call.
"""

from .app import create_app
from .errors import (
    AuthError,
    ConfigError,
    PayloadError,
    RequestError,
    StoreError,
    StoreUnavailable,
    WebhookError,
)
from .model import Call, Claims, Notification
from .plugins import on
from .receiver import Receiver
from .signals import (
    call_media_active,
    call_stale,
    call_state_changed,
    call_updated,
    handler_failed,
    notification_received,
    operation_completed,
    participants_joined,
    participants_left,
    participants_updated,
    tone_received,
)
from .store import CallStore, SQLiteStore, open_store

__all__ = [
    "AuthError",
    "Call",
    "CallStore",
    "Claims",
    "ConfigError",
    "Notification",
    "PayloadError",
    "Receiver",
    "RequestError",
    "SQLiteStore",
    "StoreError",
    "StoreUnavailable",
    "WebhookError",
    "call_media_active",
    "call_stale",
    "call_state_changed",
    "call_updated",
    "create_app",
    "handler_failed",
    "notification_received",
    "on",
    "open_store",
    "operation_completed",
    "participants_joined",
    "participants_left",
    "participants_updated",
    "tone_received",
]
