"""How the text of a setting becomes its value: one parser per type, each raising a
:class:`~webhook.errors.ConfigError` that names the variable and what it accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import ConfigError

PREFIX = "WEBHOOK_"

Parser = Callable[[str, Any], Any]


def as_text(name: str, value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise ConfigError(f"{PREFIX}{name} must be a string, got {value!r}")
    return str(value).strip()


def number(*, whole: bool, zero: bool, at_most: float | None = None, why: str = "", advice: str = "") -> Parser:
    """The parser of a whole number or of seconds, above 0 (or from 0 when ``zero``), at most ``at_most``."""
    noun = "whole number" if whole else "number of seconds"
    wanted = f"a {noun}, 0 or more" if zero else f"a positive {noun}"

    def parse(name: str, value: Any) -> int | float:
        try:
            if isinstance(value, bool) or (whole and isinstance(value, float)):
                raise ValueError
            number = int(value) if whole else float(value)
            if not (number >= 0 if zero else number > 0):  # NaN is neither
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"{PREFIX}{name} must be {wanted}, got {value!r}") from None
        if at_most is not None and number > at_most:
            raise ConfigError(f"{PREFIX}{name} must be at most {at_most:g}{why}, got {value!r}{advice}")
        return number

    return parse


positive_int = number(whole=True, zero=False)
non_negative_int = number(whole=True, zero=True)
positive_float = number(whole=False, zero=False)
non_negative_float = number(whole=False, zero=True)
keepalive_period = number(
    whole=False,
    zero=True,
    at_most=2700,
    why=" (45 minutes: Graph ends a call that long without keepAlive)",
    advice="; 900 is what Microsoft recommends",
)

answer_deadline = number(
    whole=False,
    zero=False,
    at_most=14,
    why=" (Graph drops a call not answered within 15 s: the fallback needs the rest)",
    advice="; 10 leaves the fallback 5 s",
)

joining_timeout = number(
    whole=False,
    zero=False,
    at_most=4.5,
    why=" (Graph waits 5 s for the answer to a participant joining)",
)

#: The kinds of party a redirect target may name, as ``kind:id``.
TARGET_KINDS = ("user", "application", "phone")


def redirect_target(name: str, value: Any) -> str:
    """Whom to redirect to, as ``user:<AAD object id>``, ``application:<app id>`` or ``phone:+<E.164>``."""
    text = as_text(name, value)
    kind, _, who = text.partition(":")
    if kind not in TARGET_KINDS or not who.strip():
        raise ConfigError(
            f"{PREFIX}{name} must name a party as user:<object id>, application:<app id> or phone:+<number>; "
            f"got {value!r}"
        )
    if kind == "phone" and not (who.startswith("+") and who[1:].isdigit()):
        raise ConfigError(f"{PREFIX}{name}: a phone number is written +<country code><number> (E.164); got {who!r}")
    return f"{kind}:{who.strip()}"


def app_credentials(name: str, value: Any) -> tuple[tuple[str, str], ...]:
    """More bots in one receiver: ``<app id>=<client secret>`` pairs, comma-separated (or a mapping)."""
    if isinstance(value, dict):
        pairs = [(str(app), str(secret)) for app, secret in value.items()]
    else:
        pairs = [entry.partition("=")[::2] for entry in names(name, value)]
    found: dict[str, str] = {}
    for app, secret in pairs:
        app, secret = app.strip(), secret.strip()
        if not app or not secret or "/" in app or app in found:
            shown = app or "(empty)"
            raise ConfigError(
                f"{PREFIX}{name} must list <app id>=<client secret> pairs, comma-separated, each app once; "
                f"the entry for {shown} is not one"
            )
        found[app] = secret
    return tuple(found.items())


_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def switch_value(value: Any) -> bool | None:
    """A switch spelled any of on/off, true/false, yes/no, 1/0 (any case); None when it is none of them."""
    text = str(value).strip().lower()
    return True if text in _ON else False if text in _OFF else None


def flag(name: str, value: Any) -> bool:
    """A switch, spelled as :func:`switch_value` reads."""
    on = switch_value(value)
    if on is not None:
        return on
    raise ConfigError(f"{PREFIX}{name} must be on or off (also true/false, yes/no, 1/0), got {value!r}")


def switch(name: str, value: Any) -> str:
    """A switch kept as "on" or "off", spelled as :func:`flag` accepts."""
    return "on" if flag(name, value) else "off"


def names(name: str, value: Any) -> tuple[str, ...]:
    """A comma-separated list (environment) or a list of strings (mapping)."""
    items = value if isinstance(value, (list, tuple)) else as_text(name, value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def http_url(name: str, value: Any) -> str:
    text = as_text(name, value)
    if not text.startswith(("https://", "http://")):
        raise ConfigError(f"{PREFIX}{name} must be an http(s) URL, got {value!r}")
    return text


def choice(*choices: str) -> Parser:
    def parse(name: str, value: Any) -> str:
        text = as_text(name, value).lower()
        if text not in choices:
            raise ConfigError(f"{PREFIX}{name} must be one of {', '.join(choices)}; got {value!r}")
        return text

    return parse


def store_url(name: str, value: Any) -> str:
    text = as_text(name, value)
    if "://" not in text:
        shown = f"...@{text.rpartition('@')[2]}" if "@" in text else text  # what precedes @ may be a password
        raise ConfigError(
            f"{PREFIX}{name} must be a store URL such as sqlite:///PATH or sqlite:////ABSOLUTE/PATH; got {shown!r}"
        )
    return text
