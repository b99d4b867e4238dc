"""``check-config`` and ``check-auth``: what the receiver would run with, and what is wrong with it."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..settings import Settings


@click.command("check-config")
def check_config() -> int:
    """Print the effective settings (secrets masked) and every problem found."""
    from ..app import load_settings
    from ..errors import WebhookError

    try:
        settings = load_settings()
    except WebhookError as exc:
        click.echo(f"PROBLEM: {exc.message}")
        return 1
    masked = settings.masked()
    width = max(len(name) for name in masked)
    for name, value in masked.items():
        shown = ",".join(value) if isinstance(value, tuple) else value
        click.echo(f"WEBHOOK_{name:{width}}  {shown}")
    problems = _problems(settings)
    for note in _notes(settings):
        click.echo(f"note: {note}")
    for problem in problems:
        click.echo(f"PROBLEM: {problem}")
    click.echo("no problem found" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _problems(settings: Settings) -> list[str]:
    """What would stop the receiver, or keep it from verifying Graph: each a sentence."""
    from ..app import create_app
    from ..environment import unknown_environment_warnings
    from ..errors import WebhookError
    from ..keys import fetch_keys
    from ..store import open_store

    problems = list(unknown_environment_warnings())
    try:
        settings.check_auth()
    except WebhookError as exc:
        problems.append(exc.message)
    try:
        open_store(settings.store_url, **settings.store_options()).ping()
    except WebhookError as exc:
        problems.append(f"store: {exc.message}")
    if not problems:
        try:
            create_app({"OUTBOX_SWEEP_SECONDS": 0})  # plugins, journal folder: everything start-up does
        except WebhookError as exc:
            problems.append(exc.message)
    if settings.auth == "jwt":
        try:
            fetch_keys(settings.openid_config_url, timeout=settings.key_fetch_timeout_seconds)
        except (OSError, ValueError) as exc:
            problems.append(f"Graph's signing keys cannot be fetched from {settings.openid_config_url}: {exc}")
    return problems


def _notes(settings: Settings) -> list[str]:
    """What is allowed but worth knowing."""
    notes = []
    if settings.auth != "jwt":
        notes.append("WEBHOOK_AUTH=disabled: anyone who reaches the URL can post notifications")
    if not settings.admin_token:
        notes.append("WEBHOOK_ADMIN_TOKEN is empty: the read API answers 403 and /metrics is open")
    return notes


@click.command("check-auth")
def check_auth() -> int:
    """Fetch Graph's signing keys and print what was found."""
    from ..app import load_settings
    from ..keys import fetch_keys

    settings = load_settings()
    click.echo(f"OpenID configuration: {settings.openid_config_url}")
    try:
        snapshot = fetch_keys(settings.openid_config_url, timeout=settings.key_fetch_timeout_seconds)
    except (OSError, ValueError) as exc:
        click.echo(f"FAILED: cannot fetch the signing keys: {exc}", err=True)
        return 1
    click.echo(f"issuer in the configuration: {snapshot.issuer or '(none)'}")
    click.echo(f"JWKS: {snapshot.jwks_uri}")
    click.echo(f"{len(snapshot.keys)} RSA signing key(s):")
    for entry in snapshot.raw_keys:
        click.echo(f"  kid={entry['kid']}  {_certificate_expiry(entry)}")
    click.echo(f"accepted issuers: {', '.join(settings.issuers)}")
    click.echo(f"audience (WEBHOOK_APP_ID): {settings.app_id or '(not set: required with WEBHOOK_AUTH=jwt)'}")
    return 0


def _certificate_expiry(jwk: dict[str, object]) -> str:
    from cryptography import x509

    chain = jwk.get("x5c")
    if not isinstance(chain, list) or not chain:
        return "no certificate (x5c) published"
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(str(chain[0])))
    except ValueError as exc:
        return f"unreadable certificate: {exc}"
    return f"certificate expires {certificate.not_valid_after_utc.isoformat()}"
