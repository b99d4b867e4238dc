"""``comms-webhook resync``: read a call back from Graph, as the sweeper does for a stale call."""

from __future__ import annotations

import click


@click.command()
@click.argument("call_ids", metavar="ID...", nargs=-1, required=True)
@click.option("--tenant", "tenant_id", metavar="TENANT_ID", help="The call's tenant, when the store does not know it.")
def resync(call_ids: tuple[str, ...], tenant_id: str | None) -> int:
    """Ask Graph for calls (GET the call and its participants) and apply what it says: state and roster
    refreshed, the stale mark cleared; a call Graph no longer has is ended here (404/8522). Handlers of the
    loaded plugins hear the changes. Needs the app's credentials (WEBHOOK_CLIENT_SECRET...)."""
    from ..errors import GraphError, GraphNotConfigured
    from .stored import app_state

    state = app_state()
    upkeep = state.sweeper.upkeep
    if upkeep is None:
        raise GraphNotConfigured(
            "resync asks Graph: set WEBHOOK_APP_ID and WEBHOOK_CLIENT_SECRET (or WEBHOOK_CLIENT_CERTIFICATE_PATH "
            "and WEBHOOK_CLIENT_CERTIFICATE_THUMBPRINT)"
        )
    failed = 0
    try:
        for call_id in call_ids:
            try:
                found = upkeep.resync(call_id, tenant_id=tenant_id)
            except GraphError as exc:
                failed += 1
                click.echo(f"{call_id}: Graph could not be asked, nothing changed: {exc.message}", err=True)
                continue
            if found.outcome == "refreshed":
                click.echo(f"{found.call_id}: refreshed from Graph, {found.state}")
            elif found.outcome == "ended":
                click.echo(f"{found.call_id}: Graph no longer has it: ended here")
            elif found.state is None:
                failed += 1
                click.echo(f"{found.call_id}: neither Graph nor this store has such a call", err=True)
            else:
                click.echo(f"{found.call_id}: already ended here, Graph not asked")
    finally:
        state.delivery.drain()  # deferred handlers of what changed run before the command ends
    return 1 if failed else 0
