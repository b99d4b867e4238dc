"""Every setting comms-webhook reads: name, type, default, and the message when the value is wrong.

Settings come from environment variables prefixed ``WEBHOOK_`` (``WEBHOOK_STORE_URL``...), then from the
mapping given to :func:`webhook.create_app`, whose keys are the names without the prefix. A wrong value stops
start-up with a :class:`~webhook.errors.ConfigError` that names the variable and what it accepts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError
from .setting_types import (
    PREFIX,
    Parser,
    answer_deadline,
    app_credentials,
    as_text,
    choice,
    flag,
    http_url,
    joining_timeout,
    keepalive_period,
    names,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    redirect_target,
    store_url,
    switch,
)

DEFAULT_DATABASE = "comms-webhook.sqlite3"


@dataclass(frozen=True)
class Setting:
    """One setting as declared: ``WEBHOOK_<name>``, its parser, its default, what it does, whether to mask it."""

    name: str
    parse: Parser
    default: Any
    help: str
    secret: bool = False


def _declare(parse: Parser, default: Any, help: str, *, secret: bool = False) -> Any:
    """A field of :class:`Settings`: the one declaration of a setting (its name is the field's, upper-cased)."""
    return field(default=default, metadata={"parse": parse, "help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """The validated settings of one app, each declared once here; :data:`SETTINGS` lists them."""

    data_dir: str = _declare(
        as_text,
        "",
        "The folder of everything the receiver writes (store, journal, metrics of the workers) and the app's "
        "instance folder. Default: ./instance of the directory the receiver is started from.",
    )
    store_url: str = _declare(
        store_url, "", f"Where calls are kept. Default: sqlite:///<data folder>/{DEFAULT_DATABASE}."
    )
    auth: str = _declare(
        choice("jwt", "disabled"),
        "jwt",
        "jwt: only callbacks carrying Graph's signed token get in. disabled: anyone may post (local trials).",
    )
    app_id: str = _declare(
        as_text, "", "The bot's Microsoft App ID: the audience of Graph's tokens. Required with AUTH=jwt."
    )
    apps: tuple[tuple[str, str], ...] = _declare(
        app_credentials,
        (),
        "More bots served by this receiver, as <app id>=<client secret> pairs, comma-separated: each posts to "
        "/api/calls/<app id>, its tokens checked against its app id, its calls acted on with its credentials.",
        secret=True,
    )
    issuers: tuple[str, ...] = _declare(
        names,
        ("https://graph.microsoft.com", "https://api.botframework.com"),
        "Accepted token issuers, comma-separated.",
    )
    allowed_tenants: tuple[str, ...] = _declare(
        names, (), "If set, only tokens of these tenant ids (comma-separated) get in."
    )
    auth_leeway_seconds: float = _declare(non_negative_float, 300.0, "Clock skew allowed on exp and nbf.")
    openid_config_url: str = _declare(
        http_url,
        "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration",
        "Where Graph's OpenID configuration (and through it the signing keys) is published.",
    )
    jwks_refresh_seconds: float = _declare(positive_float, 7200.0, "How often the signing keys are refetched.")
    jwks_min_refetch_seconds: float = _declare(
        positive_float,
        60.0,
        "At most one refetch per this many seconds for unknown key ids or after a failed refresh.",
    )
    key_fetch_timeout_seconds: float = _declare(positive_float, 5.0, "Timeout of each request to the key server.")
    sqlite_synchronous: str = _declare(
        choice("full", "normal"),
        "normal",
        "SQLite: normal keeps every 202 across any crash of the receiver, and may lose the last commits to a power "
        "cut or a kernel crash; full flushes each commit to disk before the 202.",
    )
    retention_seconds: float = _declare(
        positive_float, 7 * 24 * 3600.0, "Redis: how long an ended call is kept (active calls never expire)."
    )
    history_limit: int = _declare(
        positive_int, 10_000, "Transitions kept per call, the latest (a call's historyDropped counts the others)."
    )
    redis_cluster: bool = _declare(
        flag,
        False,
        "1: STORE_URL names a node of a Redis Cluster (all the store's keys share one hash tag: one slot).",
    )
    redis_prefix: str = _declare(as_text, "comms-webhook", "Redis: the prefix of every key, to share a database.")
    redis_allow_eviction: bool = _declare(
        flag,
        False,
        "1: start even though Redis may evict keys (maxmemory-policy allkeys-*), which loses acknowledged calls.",
    )
    journal: str = _declare(switch, "on", "on: append every accepted callback to the journal.")
    journal_dir: str = _declare(as_text, "", "Folder of the journal files. Default: <data folder>/journal.")
    journal_max_bytes: int = _declare(positive_int, 64 * 1024 * 1024, "A journal file is rotated beyond this size.")
    journal_retention_days: int = _declare(positive_int, 14, "Journal files older than this many days are deleted.")
    journal_fsync: bool = _declare(flag, False, "1: fsync each journal line before answering (survives power loss).")
    journal_rejected: str = _declare(switch, "off", "on: also journal rejected requests, with the reason.")
    plugins: tuple[str, ...] = _declare(
        names, (), "Plugins to load, in order: module or module:object, comma-separated."
    )
    disable_plugin_autoload: bool = _declare(
        flag, False, "1: do not load the plugins installed under the comms_webhook.plugins entry point."
    )
    slow_handler_seconds: float = _declare(positive_float, 2.0, "A handler slower than this is logged as a warning.")
    deferred_workers: int = _declare(positive_int, 4, "Threads per worker process running deferred handlers.")
    outbox_lease_seconds: float = _declare(
        positive_float, 300.0, "How long a process owns an event it is delivering before another may deliver it again."
    )
    outbox_sweep_seconds: float = _declare(
        non_negative_float,
        30.0,
        "How often each worker looks for undelivered events of stopped processes; 0 switches the sweeper off.",
    )
    stale_after_seconds: float = _declare(
        positive_float,
        3000.0,
        "An active call with no notification for this long is marked stale (Graph's keepAlive limit is 45 min).",
    )
    client_secret: str = _declare(
        as_text, "", "The app's client secret, for Graph tokens when handlers act on calls.", secret=True
    )
    client_certificate_path: str = _declare(
        as_text, "", "Instead of the secret: a PEM file with the app's key and certificate."
    )
    client_certificate_thumbprint: str = _declare(as_text, "", "The SHA-1 thumbprint (hex) of that certificate.")
    graph_url: str = _declare(http_url, "https://graph.microsoft.com/v1.0", "Graph's API root, for actions on calls.")
    authority_url: str = _declare(http_url, "https://login.microsoftonline.com", "Where app tokens come from.")
    callback_url: str = _declare(
        as_text, "", "This receiver's public https URL (.../api/calls), given to Graph in answer()."
    )
    instance_callback_url: str = _declare(
        as_text,
        "",
        "This instance's own https URL (.../api/calls): answer() gives it instead of CALLBACK_URL, so that a call's "
        "notifications come back to the instance that answered it (affinity; not needed with a shared store).",
    )
    graph_ca_bundle: str = _declare(
        as_text, "", "A PEM file of extra certificates to trust for Graph (a fake Graph in tests)."
    )
    graph_timeout_seconds: float = _declare(positive_float, 10.0, "Timeout of each request to Graph.")
    keepalive_seconds: float = _declare(
        keepalive_period,
        900.0,
        "Each answered call gets keepAlive this often (Graph ends calls after 45 min without); 0: off.",
    )
    answer_deadline_seconds: float = _declare(
        answer_deadline,
        10.0,
        "An incoming call no handler replied to this many seconds after it came in gets the fallback (Graph drops "
        "it at 15 s; a policy-based recording call, which Graph drops at 5 s, at the same share of that).",
    )
    answer_fallback: str = _declare(
        choice("none", "reject", "redirect"),
        "none",
        "What the answer-deadline guard does: none (log and count), reject (busy), or redirect to "
        "ANSWER_FALLBACK_TARGET. reject and redirect need Graph credentials.",
    )
    answer_fallback_target: str = _declare(
        redirect_target, "", "Whom the guard redirects to: user:<object id>, application:<app id> or phone:+<number>."
    )
    joining_timeout_seconds: float = _declare(
        joining_timeout,
        3.0,
        "How long participant_joining handlers have to decide before JOINING_DEFAULT is answered (Graph waits 5 s).",
    )
    joining_default: str = _declare(
        choice("reject", "accept"),
        "reject",
        "The answer to a participant joining when no handler decided in time: reject (busy) or accept.",
    )
    resync_stale: str = _declare(
        switch,
        "on",
        "on: a call marked stale is read back from Graph (GET): refreshed, or ended if Graph has it no more.",
    )
    metrics_token: str = _declare(
        as_text, "", "Bearer token of /metrics; without it, /metrics takes the admin token.", secret=True
    )
    proxy_hops: int = _declare(non_negative_int, 0, "Proxies in front whose X-Forwarded-* headers are trusted.")
    log_format: str = _declare(choice("json", "text"), "json", "json: one JSON object per log line; text: for people.")
    log_level: str = _declare(choice("debug", "info", "warning", "error"), "info", "The level of comms-webhook's logs.")
    admin_token: str = _declare(
        as_text, "", "Bearer token of the read API; without it the read API answers 403.", secret=True
    )
    max_body_bytes: int = _declare(positive_int, 1024 * 1024, "Largest accepted body, in bytes (413 above).")
    max_notifications_per_body: int = _declare(
        positive_int, 200, "Most notifications accepted in one body (400 above): each is a store transaction."
    )
    body_timeout_seconds: float = _declare(
        positive_float, 10.0, "How long a request body may stall under gunicorn before the request is answered 408."
    )
    store_timeout_seconds: float = _declare(
        positive_float,
        5.0,
        "How long a write waits for the store before answering 503 (keep it under gunicorn's timeout).",
    )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, instance_path: str | os.PathLike[str]) -> Settings:
        """Validate ``values`` (names without the prefix); missing names take their defaults, the store and the
        journal in ``instance_path`` (the data folder: see :func:`data_dir`)."""
        parsed: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = values.get(setting.name)
            parsed[setting.name.lower()] = setting.default if raw is None else setting.parse(setting.name, raw)
        parsed["data_dir"] = str(instance_path)
        if not parsed["store_url"]:
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
        if self.auth == "jwt" and not (self.app_id or self.apps):
            raise ConfigError(
                f"{PREFIX}APP_ID is required with {PREFIX}AUTH=jwt: set it to your bot's Microsoft App ID "
                f"(the audience of Graph's tokens), or list your bots in {PREFIX}APPS, or set "
                f"{PREFIX}AUTH=disabled for a local trial"
            )
        if self.auth == "jwt" and not self.issuers:
            raise ConfigError(f"{PREFIX}ISSUERS is empty: no token could ever be accepted")

    def check_answer_fallback(self, graph_configured: bool) -> None:
        """Raise :class:`ConfigError` when the answer-deadline guard's fallback cannot be carried out."""
        if self.answer_fallback == "redirect" and not self.answer_fallback_target:
            raise ConfigError(
                f"{PREFIX}ANSWER_FALLBACK=redirect needs {PREFIX}ANSWER_FALLBACK_TARGET (user:<object id>, "
                "application:<app id> or phone:+<number>)"
            )
        if self.answer_fallback != "none" and not graph_configured:
            raise ConfigError(
                f"{PREFIX}ANSWER_FALLBACK={self.answer_fallback} acts on calls through Graph: set "
                f"{PREFIX}CLIENT_SECRET (or {PREFIX}CLIENT_CERTIFICATE_PATH), or {PREFIX}ANSWER_FALLBACK=none"
            )

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


#: Every setting, in the order declared.
SETTINGS: tuple[Setting, ...] = tuple(
    Setting(each.name.upper(), each.metadata["parse"], each.default, each.metadata["help"], each.metadata["secret"])
    for each in fields(Settings)
)
#: The settings by name (without the prefix), in the order declared.
BY_NAME = {setting.name: setting for setting in SETTINGS}


def default(name: str) -> Any:
    """The declared default of ``WEBHOOK_<name>``: what the modules that own a setting take when not given it."""
    return BY_NAME[name].default


def masked_url(url: str) -> str:
    """``url`` with the password of its authority (``scheme://user:password@host``) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
