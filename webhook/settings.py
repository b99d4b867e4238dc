"""Every setting comms-webhook reads: name, type, default, and the message when the value is wrong.

Settings come from environment variables prefixed ``WEBHOOK_`` (``WEBHOOK_STORE_URL``...), then from the
mapping given to :func:`webhook.create_app`, whose keys are the names without the prefix. A wrong value stops
start-up with a :class:`~webhook.errors.ConfigError` that names the variable and what it accepts.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

PREFIX = "WEBHOOK_"
DEFAULT_DATABASE = "comms-webhook.sqlite3"


def _text(name: str, value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise ConfigError(f"{PREFIX}{name} must be a string, got {value!r}")
    return str(value).strip()


def _positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
        if isinstance(value, (bool, float)) or number <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{PREFIX}{name} must be a positive whole number, got {value!r}") from None
    return number


def _non_negative_int(name: str, value: Any) -> int:
    try:
        number = int(value)
        if isinstance(value, (bool, float)) or number < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{PREFIX}{name} must be a whole number, 0 or more, got {value!r}") from None
    return number


def _positive_float(name: str, value: Any) -> float:
    try:
        number = float(value)
        if isinstance(value, bool) or not number > 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{PREFIX}{name} must be a positive number of seconds, got {value!r}") from None
    return number


def _keepalive_period(name: str, value: Any) -> float:
    number = _non_negative_float(name, value)
    if number > 2700:
        raise ConfigError(
            f"{PREFIX}{name} must be at most 2700 (45 minutes: Graph ends a call that long without keepAlive), "
            f"got {value!r}; 900 is what Microsoft recommends"
        )
    return number


def _non_negative_float(name: str, value: Any) -> float:
    try:
        number = float(value)
        if isinstance(value, bool) or not number >= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{PREFIX}{name} must be a number of seconds, 0 or more, got {value!r}") from None
    return number


_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def switch_value(value: Any) -> bool | None:
    """A switch spelled any of on/off, true/false, yes/no, 1/0 (any case); None when it is none of them."""
    text = str(value).strip().lower()
    return True if text in _ON else False if text in _OFF else None


def _flag(name: str, value: Any) -> bool:
    """A switch, spelled as :func:`switch_value` reads."""
    on = switch_value(value)
    if on is not None:
        return on
    raise ConfigError(f"{PREFIX}{name} must be on or off (also true/false, yes/no, 1/0), got {value!r}")


def _switch(name: str, value: Any) -> str:
    """A switch kept as "on" or "off", spelled as :func:`_flag` accepts."""
    return "on" if _flag(name, value) else "off"


def _names(name: str, value: Any) -> tuple[str, ...]:
    """A comma-separated list (environment) or a list of strings (mapping)."""
    items = value if isinstance(value, (list, tuple)) else _text(name, value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _http_url(name: str, value: Any) -> str:
    text = _text(name, value)
    if not text.startswith(("https://", "http://")):
        raise ConfigError(f"{PREFIX}{name} must be an http(s) URL, got {value!r}")
    return text


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(name: str, value: Any) -> str:
        text = _text(name, value).lower()
        if text not in choices:
            raise ConfigError(f"{PREFIX}{name} must be one of {', '.join(choices)}; got {value!r}")
        return text

    return parse


def _store_url(name: str, value: Any) -> str:
    text = _text(name, value)
    if "://" not in text:
        shown = f"...@{text.rpartition('@')[2]}" if "@" in text else text  # what precedes @ may be a password
        raise ConfigError(
            f"{PREFIX}{name} must be a store URL such as sqlite:///PATH or sqlite:////ABSOLUTE/PATH; got {shown!r}"
        )
    return text


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str, Any], Any]
    default: Any
    help: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATA_DIR",
        _text,
        "",
        "The folder of everything the receiver writes (store, journal, metrics of the workers) and the app's "
        "instance folder. Default: ./instance of the directory the receiver is started from.",
    ),
    Setting(
        "STORE_URL",
        _store_url,
        None,
        f"Where calls are kept. Default: sqlite:///<data folder>/{DEFAULT_DATABASE}.",
    ),
    Setting(
        "AUTH",
        _choice("jwt", "disabled"),
        "jwt",
        "jwt: only callbacks carrying Graph's signed token get in. disabled: anyone may post (local trials).",
    ),
    Setting("APP_ID", _text, "", "The bot's Microsoft App ID: the audience of Graph's tokens. Required with AUTH=jwt."),
    Setting(
        "ISSUERS",
        _names,
        ("https://graph.microsoft.com", "https://api.botframework.com"),
        "Accepted token issuers, comma-separated.",
    ),
    Setting("ALLOWED_TENANTS", _names, (), "If set, only tokens of these tenant ids (comma-separated) get in."),
    Setting("AUTH_LEEWAY_SECONDS", _non_negative_float, 300.0, "Clock skew allowed on exp and nbf."),
    Setting(
        "OPENID_CONFIG_URL",
        _http_url,
        "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration",
        "Where Graph's OpenID configuration (and through it the signing keys) is published.",
    ),
    Setting("JWKS_REFRESH_SECONDS", _positive_float, 7200.0, "How often the signing keys are refetched."),
    Setting(
        "JWKS_MIN_REFETCH_SECONDS",
        _positive_float,
        60.0,
        "At most one refetch per this many seconds for unknown key ids or after a failed refresh.",
    ),
    Setting("KEY_FETCH_TIMEOUT_SECONDS", _positive_float, 5.0, "Timeout of each request to the key server."),
    Setting(
        "SQLITE_SYNCHRONOUS",
        _choice("full", "normal"),
        "normal",
        "SQLite: normal keeps every 202 across any crash of the receiver, and may lose the last commits to a power "
        "cut or a kernel crash; full flushes each commit to disk before the 202.",
    ),
    Setting(
        "RETENTION_SECONDS",
        _positive_float,
        7 * 24 * 3600.0,
        "Redis: how long an ended call is kept (active calls never expire).",
    ),
    Setting(
        "HISTORY_LIMIT",
        _positive_int,
        10_000,
        "Transitions kept per call, the latest (a call's historyDropped counts the others).",
    ),
    Setting(
        "REDIS_CLUSTER",
        _flag,
        False,
        "1: STORE_URL names a node of a Redis Cluster (all the store's keys share one hash tag: one slot).",
    ),
    Setting("REDIS_PREFIX", _text, "comms-webhook", "Redis: the prefix of every key, to share a database."),
    Setting(
        "REDIS_ALLOW_EVICTION",
        _flag,
        False,
        "1: start even though Redis may evict keys (maxmemory-policy allkeys-*), which loses acknowledged calls.",
    ),
    Setting("JOURNAL", _switch, "on", "on: append every accepted callback to the journal."),
    Setting("JOURNAL_DIR", _text, "", "Folder of the journal files. Default: <data folder>/journal."),
    Setting("JOURNAL_MAX_BYTES", _positive_int, 64 * 1024 * 1024, "A journal file is rotated beyond this size."),
    Setting("JOURNAL_RETENTION_DAYS", _positive_int, 14, "Journal files older than this many days are deleted."),
    Setting("JOURNAL_FSYNC", _flag, False, "1: fsync each journal line before answering (survives power loss)."),
    Setting("JOURNAL_REJECTED", _switch, "off", "on: also journal rejected requests, with the reason."),
    Setting("PLUGINS", _names, (), "Plugins to load, in order: module or module:object, comma-separated."),
    Setting(
        "DISABLE_PLUGIN_AUTOLOAD",
        _flag,
        False,
        "1: do not load the plugins installed under the comms_webhook.plugins entry point.",
    ),
    Setting("SLOW_HANDLER_SECONDS", _positive_float, 2.0, "A handler slower than this is logged as a warning."),
    Setting("DEFERRED_WORKERS", _positive_int, 4, "Threads per worker process running deferred handlers."),
    Setting(
        "OUTBOX_LEASE_SECONDS",
        _positive_float,
        300.0,
        "How long a process owns an event it is delivering before another may deliver it again.",
    ),
    Setting(
        "OUTBOX_SWEEP_SECONDS",
        _non_negative_float,
        30.0,
        "How often each worker looks for undelivered events of stopped processes; 0 switches the sweeper off.",
    ),
    Setting(
        "STALE_AFTER_SECONDS",
        _positive_float,
        3000.0,
        "An active call with no notification for this long is marked stale (Graph's keepAlive limit is 45 min).",
    ),
    Setting("CLIENT_SECRET", _text, "", "The app's client secret, for Graph tokens when handlers act on calls.", True),
    Setting(
        "CLIENT_CERTIFICATE_PATH", _text, "", "Instead of the secret: a PEM file with the app's key and certificate."
    ),
    Setting("CLIENT_CERTIFICATE_THUMBPRINT", _text, "", "The SHA-1 thumbprint (hex) of that certificate."),
    Setting("GRAPH_URL", _http_url, "https://graph.microsoft.com/v1.0", "Graph's API root, for actions on calls."),
    Setting("AUTHORITY_URL", _http_url, "https://login.microsoftonline.com", "Where app tokens come from."),
    Setting("CALLBACK_URL", _text, "", "This receiver's public https URL (.../api/calls), given to Graph in answer()."),
    Setting(
        "GRAPH_CA_BUNDLE", _text, "", "A PEM file of extra certificates to trust for Graph (a fake Graph in tests)."
    ),
    Setting("GRAPH_TIMEOUT_SECONDS", _positive_float, 10.0, "Timeout of each request to Graph."),
    Setting(
        "KEEPALIVE_SECONDS",
        _keepalive_period,
        900.0,
        "Each answered call gets keepAlive this often (Graph ends calls after 45 min without); 0: off.",
    ),
    Setting(
        "RESYNC_STALE",
        _switch,
        "on",
        "on: a call marked stale is read back from Graph (GET): refreshed, or ended if Graph has it no more.",
    ),
    Setting("METRICS_TOKEN", _text, "", "Bearer token of /metrics; without it, /metrics takes the admin token.", True),
    Setting("PROXY_HOPS", _non_negative_int, 0, "Proxies in front whose X-Forwarded-* headers are trusted."),
    Setting("LOG_FORMAT", _choice("json", "text"), "json", "json: one JSON object per log line; text: for people."),
    Setting("LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info", "The level of comms-webhook's logs."),
    Setting("ADMIN_TOKEN", _text, "", "Bearer token of the read API; without it the read API answers 403.", True),
    Setting("MAX_BODY_BYTES", _positive_int, 1024 * 1024, "Largest accepted body, in bytes (413 above)."),
    Setting(
        "MAX_NOTIFICATIONS_PER_BODY",
        _positive_int,
        200,
        "Most notifications accepted in one body (400 above): each is a store transaction.",
    ),
    Setting(
        "BODY_TIMEOUT_SECONDS",
        _positive_float,
        10.0,
        "How long a request body may stall under gunicorn before the request is answered 408.",
    ),
    Setting(
        "STORE_TIMEOUT_SECONDS",
        _positive_float,
        5.0,
        "How long a write waits for the store before answering 503 (keep it under gunicorn's timeout).",
    ),
)
_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The validated settings of one app."""

    data_dir: str
    store_url: str
    auth: str
    app_id: str
    issuers: tuple[str, ...]
    allowed_tenants: tuple[str, ...]
    auth_leeway_seconds: float
    openid_config_url: str
    jwks_refresh_seconds: float
    jwks_min_refetch_seconds: float
    key_fetch_timeout_seconds: float
    sqlite_synchronous: str
    retention_seconds: float
    history_limit: int
    redis_cluster: bool
    redis_prefix: str
    redis_allow_eviction: bool
    journal: str
    journal_dir: str
    journal_max_bytes: int
    journal_retention_days: int
    journal_fsync: bool
    journal_rejected: str
    plugins: tuple[str, ...]
    disable_plugin_autoload: bool
    slow_handler_seconds: float
    deferred_workers: int
    outbox_lease_seconds: float
    outbox_sweep_seconds: float
    stale_after_seconds: float
    client_secret: str
    client_certificate_path: str
    client_certificate_thumbprint: str
    graph_url: str
    authority_url: str
    callback_url: str
    graph_ca_bundle: str
    graph_timeout_seconds: float
    keepalive_seconds: float
    resync_stale: str
    metrics_token: str
    proxy_hops: int
    log_format: str
    log_level: str
    admin_token: str
    max_body_bytes: int
    max_notifications_per_body: int
    body_timeout_seconds: float
    store_timeout_seconds: float

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, instance_path: str | os.PathLike[str]) -> Settings:
        """Validate ``values`` (names without the prefix); missing names take their defaults, the store and the
        journal in ``instance_path`` (the data folder: see :func:`data_dir`)."""
        parsed: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = values.get(setting.name)
            parsed[setting.name.lower()] = setting.default if raw is None else setting.parse(setting.name, raw)
        parsed["data_dir"] = str(instance_path)
        if parsed["store_url"] is None:
            parsed["store_url"] = f"sqlite:///{Path(instance_path) / DEFAULT_DATABASE}"
        if not parsed["journal_dir"]:
            parsed["journal_dir"] = str(Path(instance_path) / "journal")
        return cls(**parsed)

    def store_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`webhook.store.open_store` these settings call for."""
        return {
            "timeout": self.store_timeout_seconds,
            "retention_seconds": self.retention_seconds,
            "prefix": self.redis_prefix,
            "redis_allow_eviction": self.redis_allow_eviction,
            "sqlite_synchronous": self.sqlite_synchronous,
            "history_limit": self.history_limit,
            "redis_cluster": self.redis_cluster,
        }

    def check_auth(self) -> None:
        """Raise :class:`ConfigError` when the receiver cannot verify tokens as configured."""
        if self.auth == "jwt" and not self.app_id:
            raise ConfigError(
                f"{PREFIX}APP_ID is required with {PREFIX}AUTH=jwt: set it to your bot's Microsoft App ID "
                f"(the audience of Graph's tokens), or set {PREFIX}AUTH=disabled for a local trial"
            )
        if self.auth == "jwt" and not self.issuers:
            raise ConfigError(f"{PREFIX}ISSUERS is empty: no token could ever be accepted")

    def masked(self) -> dict[str, Any]:
        """The settings by name, secrets masked: for logs and ``check-config``."""
        shown: dict[str, Any] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.name.lower())
            shown[setting.name] = ("***" if value else "") if setting.secret else value
        shown["STORE_URL"] = self.masked_store_url
        return shown

    @property
    def masked_store_url(self) -> str:
        """``STORE_URL`` with its password masked: the only spelling of it that may be printed or logged."""
        return masked_url(self.store_url)


def masked_url(url: str) -> str:
    """``url`` with the password of its authority (``scheme://user:password@host``) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def data_dir(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The data folder, absolute: ``DATA_DIR`` of ``config``, else ``WEBHOOK_DATA_DIR``, else ``./instance`` of
    the current directory (never inside the virtual environment, which is rebuilt at will)."""
    environ = os.environ if environ is None else environ
    configured = (config or {}).get("DATA_DIR") or environ.get(f"{PREFIX}DATA_DIR", "").strip()
    return os.path.abspath(_text("DATA_DIR", configured) if configured else "instance")


def environment_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our settings set in the environment (``WEBHOOK_*``), by name without the prefix, as the strings they are."""
    environ = os.environ if environ is None else environ
    return {key[len(PREFIX) :]: value for key, value in environ.items() if key[len(PREFIX) :] in _BY_NAME}


def unknown_environment_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """``WEBHOOK_*`` variables that name no setting of ours nor of Flask's: most likely typos worth a warning.
    (Flask's own, ``WEBHOOK_SECRET_KEY`` say, reach the app's config as Flask reads them.)"""
    from flask import Flask

    environ = os.environ if environ is None else environ
    known = {*_BY_NAME, *Flask.default_config}
    return sorted(key for key in environ if key.startswith(PREFIX) and key[len(PREFIX) :] not in known)


def unknown_environment_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per unknown ``WEBHOOK_*`` variable, naming the setting it most likely meant."""
    warnings = []
    for name in unknown_environment_names(environ):
        close = difflib.get_close_matches(name[len(PREFIX) :], list(_BY_NAME), n=1, cutoff=0.6)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else " (a typo?)"
        warnings.append(f"{name} is set but is not a comms-webhook setting, so it is ignored{hint}")
    return warnings
