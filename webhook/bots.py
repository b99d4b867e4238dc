"""The bots one receiver serves, each with its own token audience, credentials and callback URL.

``WEBHOOK_APP_ID`` is the bot of the bare ``POST /api/calls`` (the single bot most receivers serve). Each app of
``WEBHOOK_APPS`` posts to ``/api/calls/<app id>`` (so may the first one): Graph's token must be for that app id,
its calls are kept with it (:attr:`~webhook.model.Call.app_id`), and handlers' ``actions``, keep-alive, resync
and the answer-deadline guard act on them with that app's credentials, telling Graph that app's callback URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .auth import Verifier
from .errors import NotFound
from .graph import GraphClient
from .keys import KeyCache
from .settings import Settings


@dataclass(frozen=True)
class Bot:
    """One bot: its app id (the tokens' audience), its Graph client, the callback URL its answers name, and its
    token verifier (None when authentication is disabled)."""

    app_id: str
    client: GraphClient
    callback_url: str
    verifier: Verifier | None


class Bots:
    """The bots of one receiver, by app id; the first is the bare ``/api/calls``'s."""

    def __init__(self, default: Bot, others: tuple[Bot, ...] = (), *, auth: bool = True) -> None:
        self.default = default
        self._by_id = {bot.app_id: bot for bot in (*others, default) if bot.app_id}
        self._auth = auth

    def __iter__(self) -> Iterator[Bot]:
        return iter(self._by_id.values())

    def at(self, app_id: str | None) -> Bot:
        """The bot posting to ``/api/calls/<app_id>`` (None: the bare ``/api/calls``); raises
        :class:`~webhook.errors.NotFound` for an app this receiver does not serve."""
        if app_id is None:
            if self._auth and not self.default.app_id:  # no audience to check tokens against: fail closed
                raise NotFound(
                    "This receiver serves its bots at /api/calls/<app id> (WEBHOOK_APPS); "
                    "set WEBHOOK_APP_ID for the bare /api/calls."
                )
            return self.default
        bot = self._by_id.get(app_id)
        if bot is None:
            raise NotFound(f"No bot with app id {app_id} is served here: WEBHOOK_APPS lists the ones that are.")
        return bot

    def of(self, app_id: str | None) -> Bot:
        """The bot a call belongs to (its app id; the default bot's when it has none or an unknown one)."""
        return self._by_id.get(app_id or "", self.default)

    def client_for(self, app_id: str | None) -> GraphClient | None:
        """The Graph client that acts on a call of ``app_id``, if it has credentials."""
        client = self.of(app_id).client
        return client if client.configured else None

    @property
    def configured(self) -> bool:
        """Whether any bot can act through Graph."""
        return any(bot.client.configured for bot in (self.default, *self._by_id.values()))

    @classmethod
    def from_settings(cls, settings: Settings) -> Bots:
        keys = None
        if settings.auth == "jwt":
            keys = KeyCache(
                settings.openid_config_url,
                refresh_seconds=settings.jwks_refresh_seconds,
                min_refetch_seconds=settings.jwks_min_refetch_seconds,
                timeout=settings.key_fetch_timeout_seconds,
            )
        base = settings.instance_callback_url or settings.callback_url
        secrets = dict(settings.apps)
        default = Bot(
            settings.app_id,
            GraphClient.from_settings(settings, client_secret=settings.client_secret or secrets.get(settings.app_id)),
            base,
            _verifier(settings, settings.app_id, keys) if settings.app_id else None,
        )
        others = tuple(
            Bot(
                app_id,
                GraphClient.from_settings(settings, app_id=app_id, client_secret=secret),
                f"{base.rstrip('/')}/{app_id}" if base else "",
                _verifier(settings, app_id, keys),
            )
            for app_id, secret in settings.apps
            if app_id != settings.app_id
        )
        return cls(default, others, auth=keys is not None)


def _verifier(settings: Settings, app_id: str, keys: KeyCache | None) -> Verifier | None:
    if keys is None:
        return None
    return Verifier(
        app_id,
        keys,
        issuers=settings.issuers,
        allowed_tenants=settings.allowed_tenants,
        leeway_seconds=settings.auth_leeway_seconds,
    )
