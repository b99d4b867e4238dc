"""comms-webhook: the callback URL of a Microsoft Graph calling bot.

``create_app()`` builds the Flask receiver; the signals in :mod:`webhook.signals` tell your code what happened
to each call.
"""

# The public names, each imported on first use (PEP 562): `import webhook.state`, `comms-webhook --help` and the
# gunicorn master must not pay for Flask, PyJWT and prometheus-client, nor create the app's metrics.
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AlreadyReplied": "errors",
    "AuthError": "errors",
    "Call": "model",
    "CallGone": "errors",
    "CallStore": "store",
    "Claims": "notification",
    "ConfigError": "errors",
    "Decision": "events",
    "Event": "events",
    "Forbidden": "errors",
    "GraphError": "errors",
    "GraphForbidden": "errors",
    "GraphNotConfigured": "errors",
    "GraphThrottled": "errors",
    "GraphUnreachable": "errors",
    "HandlerNotLoaded": "errors",
    "KeysUnavailable": "errors",
    "NotFound": "errors",
    "Notification": "notification",
    "Party": "model",
    "PayloadError": "errors",
    "Receiver": "receiver",
    "RequestError": "errors",
    "SQLiteStore": "store",
    "StoreError": "errors",
    "StoreUnavailable": "errors",
    "WebhookError": "errors",
    "call_media_active": "signals",
    "call_stale": "signals",
    "call_state_changed": "signals",
    "call_updated": "signals",
    "create_app": "app",
    "handler_failed": "signals",
    "notification_received": "signals",
    "on": "handlers",
    "open_store": "store",
    "operation_completed": "signals",
    "participant_joining": "signals",
    "participants_joined": "signals",
    "participants_left": "signals",
    "participants_updated": "signals",
    "route_incoming": "signals",
    "tone_received": "signals",
}

if TYPE_CHECKING:
    from .app import create_app as create_app
    from .errors import (
        AlreadyReplied as AlreadyReplied,
        AuthError as AuthError,
        CallGone as CallGone,
        ConfigError as ConfigError,
        Forbidden as Forbidden,
        GraphError as GraphError,
        GraphForbidden as GraphForbidden,
        GraphNotConfigured as GraphNotConfigured,
        GraphThrottled as GraphThrottled,
        GraphUnreachable as GraphUnreachable,
        HandlerNotLoaded as HandlerNotLoaded,
        KeysUnavailable as KeysUnavailable,
        NotFound as NotFound,
        PayloadError as PayloadError,
        RequestError as RequestError,
        StoreError as StoreError,
        StoreUnavailable as StoreUnavailable,
        WebhookError as WebhookError,
    )
    from .events import Decision as Decision, Event as Event
    from .handlers import on as on
    from .model import Call as Call, Party as Party
    from .notification import Claims as Claims, Notification as Notification
    from .receiver import Receiver as Receiver
    from .signals import (
        call_media_active as call_media_active,
        call_stale as call_stale,
        call_state_changed as call_state_changed,
        call_updated as call_updated,
        handler_failed as handler_failed,
        notification_received as notification_received,
        operation_completed as operation_completed,
        participant_joining as participant_joining,
        participants_joined as participants_joined,
        participants_left as participants_left,
        participants_updated as participants_updated,
        route_incoming as route_incoming,
        tone_received as tone_received,
    )
    from .store import CallStore as CallStore, SQLiteStore as SQLiteStore, open_store as open_store

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'webhook' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
