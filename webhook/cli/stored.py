"""Commands that read what the receiver stored: ``calls``, ``call``, ``failures``, ``plugins``.

They look at the store and the plugins without receiving anything, so they need no App ID and say nothing
about authentication.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ..model import CALL_STATES

if TYPE_CHECKING:
    from ..http import WebhookState
    from ..settings import Settings
    from ..store import CallStore


def app_state() -> WebhookState:
    """The store and plugins the receiver would use (``create_app(receiving=False)``)."""
    from ..app import create_app
    from ..http import EXTENSION

    state: WebhookState = create_app({"OUTBOX_SWEEP_SECONDS": 0}, receiving=False).extensions[EXTENSION]
    return state


def _store() -> tuple[Settings, CallStore]:
    from ..app import load_settings
    from ..store import open_store

    settings = load_settings()
    return settings, open_store(settings.store_url, **settings.store_options())


@click.command()
@click.option("--state", type=click.Choice(CALL_STATES, case_sensitive=False), help="Only calls in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="At most this many.")
@click.option("--active", is_flag=True, help="Only calls that have not ended.")
@click.option("--app", help="Only the calls of this bot (its app id), when the receiver serves several.")
@click.option("--json", "as_json", is_flag=True, help="Print the calls as JSON.")
def calls(state: str | None, limit: int, active: bool, app: str | None, as_json: bool) -> None:
    """List the calls in the store, most recently heard of first."""
    from ..model import canonical_enum

    _, store = _store()
    wanted = canonical_enum(state, CALL_STATES) if state else None
    found = store.list_calls(wanted, limit, active=active, app=app)
    if as_json:
        click.echo(json.dumps([call.to_dict() for call in found], indent=2))
        return
    if not found:
        click.echo("no calls" + (f" in state {wanted}" if wanted else ""))
        return
    click.echo(f"{'ID':36}  {'STATE':16}  {'UPDATED':24}  END REASON")
    for call in found:
        click.echo(f"{call.id:36}  {call.state or '-':16}  {call.updated_at:24}  {call.end_reason or ''}")


@click.command()
@click.argument("call_id", metavar="ID")
def call(call_id: str) -> int:
    """Print one call: state, history, participants, operations (any spelling of its id)."""
    from ..resources import canonical_id

    settings, store = _store()
    found = store.get(canonical_id(call_id))
    if found is None:
        click.echo(f"no call {call_id} in {settings.masked_store_url}", err=True)
        return 1
    click.echo(json.dumps(found.to_dict(), indent=2))
    return 0


@click.command()
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved failures.")
@click.option("--json", "as_json", is_flag=True, help="Print the failures as JSON.")
@click.option("--retry", "retry_ids", type=int, multiple=True, metavar="ID", help="Run this failure's handler again.")
@click.option("--retry-all", is_flag=True, help="Run every pending failure's handler again.")
def failures(include_resolved: bool, as_json: bool, retry_ids: tuple[int, ...], retry_all: bool) -> int:
    """List handler failures, or retry them (--retry ID, repeatable)."""
    state = app_state()
    store = state.store
    if retry_ids or retry_all:
        return _retry(state, [f.id for f in store.failures(limit=10_000)] if retry_all else list(retry_ids))
    found = store.failures(include_resolved=include_resolved)
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in found], indent=2))
        return 0
    if not found:
        click.echo("no pending handler failures" if not include_resolved else "no handler failures")
    for failure in found:
        last_line = failure.error.strip().splitlines()[-1] if failure.error.strip() else ""
        click.echo(
            f"#{failure.id}  {failure.status:8}  {failure.handler} on {failure.signal}  call {failure.call_id}  "
            f"attempts {failure.attempts}  last {failure.last_at}"
        )
        click.echo("    " + last_line)
    return 0


def _retry(state: WebhookState, wanted: list[int]) -> int:
    from ..errors import HandlerNotLoaded
    from ..failures import retry_failure

    code = 0
    for failure_id in wanted:
        failure = state.store.failure(failure_id)
        if failure is None:
            click.echo(f"#{failure_id}: no failure with this id", err=True)
            code = 1
            continue
        if failure.status != "pending":
            click.echo(f"#{failure_id} {failure.handler}: already {failure.status} (attempts {failure.attempts})")
            continue
        try:
            error = retry_failure(state.delivery, failure)
        except HandlerNotLoaded as exc:
            click.echo(f"#{failure_id}: not retried: {exc.message}", err=True)
            code = 1
            continue
        click.echo(f"#{failure_id} {failure.handler}: " + ("succeeded" if not error else "failed again"))
        if error:
            click.echo("    " + error.strip().splitlines()[-1])
            code = 1
    return code


@click.command()
def plugins() -> None:
    """List the loaded plugins and the handlers each registered."""
    loaded = app_state().plugins
    if not loaded:
        click.echo("no plugins loaded (WEBHOOK_PLUGINS is empty and no installed distribution offers one)")
    for plugin in loaded:
        origin = f"{plugin.distribution} {plugin.version}" if plugin.distribution else "not from a distribution"
        click.echo(f"{plugin.name}  [{plugin.source}; {origin}]")
        for handler in plugin.handlers:
            click.echo(f"    {handler.describe()}")
        if not plugin.handlers:
            click.echo("    (no handlers)")
