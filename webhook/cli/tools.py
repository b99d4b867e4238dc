"""``replay`` and ``simulate``: post recorded or generated callbacks to a receiver, here or at a URL.

``--in-process`` builds an app from the current settings, but on a throwaway store and data folder, with no
journal and no plugins, unless ``--store URL`` and ``--plugins`` say otherwise: a trial must not write fake
calls into the real store, nor run the production plugins on them.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from flask import Flask

    from ..testing import LocalGraphKeys


def _probability(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0 <= value <= 1:
        raise click.BadParameter(f"--{param.name} must be a probability from 0 to 1, got {value}")
    return value


def _positive(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value <= 0:
        raise click.BadParameter(f"--{param.name} must be more than 0, got {value}")
    return value


def _target_options(tenant: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options saying where requests go (--url or --in-process, with --store, --plugins) and how they are
    signed (--token-key, --app-id, --tenant), handed to the command as one :class:`Trial` named ``run``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_target(
            url: str | None,
            in_process: bool,
            store_url: str | None,
            with_plugins: bool,
            token_key: str | None,
            app_id: str | None,
            tenant: str,
            **options: Any,
        ) -> Any:
            if bool(url) == in_process:
                raise click.UsageError("give exactly one of --url URL and --in-process")
            return command(run=Trial(url, store_url, with_plugins, token_key, app_id, tenant), **options)

        for option in reversed(
            (
                click.option("--url", help="The receiver's callback URL, e.g. http://127.0.0.1:8000/api/calls."),
                click.option("--in-process", is_flag=True, help="An app built here from the current settings."),
                click.option("--store", "store_url", metavar="URL", help="--in-process: this store, not a throwaway."),
                click.option("--plugins", "with_plugins", is_flag=True, help="--in-process: load configured plugins."),
                click.option("--token-key", type=click.Path(exists=True, dir_okay=False), help="Sign with this key."),
                click.option("--app-id", help="The audience of the signed tokens (the bot's App ID)."),
                click.option("--tenant", default=tenant, show_default=True, help="The tenant of the signed tokens."),
            )
        ):
            with_target = option(with_target)
        return with_target

    return decorate


class Trial:
    """Where a run's requests go (``url``, else an app built here) and how they are signed; :meth:`close`
    removes what the run made."""

    def __init__(
        self,
        url: str | None,
        store_url: str | None,
        with_plugins: bool,
        token_key: str | None,
        app_id: str | None,
        tenant: str,
    ) -> None:
        from ..testing import LocalGraphKeys

        self.keys: LocalGraphKeys | None = LocalGraphKeys.from_pem(token_key) if token_key else None
        if self.keys is not None and not app_id:
            raise click.UsageError("--token-key needs --app-id (the audience the receiver expects)")
        self.url, self.store_url, self.with_plugins = url, store_url, with_plugins
        self.app_id, self.tenant = app_id, tenant
        self._folder: str | None = None

    def token(self) -> str:
        assert self.keys is not None and self.app_id is not None
        return self.keys.token(aud=self.app_id, tid=self.tenant)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"} if self.keys is not None else {}

    def app(self, **settings: object) -> Flask:
        """The in-process app: the current settings, on a throwaway store and data folder, no journal, no
        plugins, unless --store / --plugins; ``settings`` on top."""
        from ..app import create_app

        self._folder = tempfile.mkdtemp(prefix="comms-webhook-trial-")
        overrides: dict[str, object] = {"OUTBOX_SWEEP_SECONDS": 0, "DATA_DIR": self._folder, "JOURNAL": "off"}
        overrides["STORE_URL"] = self.store_url or f"sqlite:///{os.path.join(self._folder, 'trial.sqlite3')}"
        if not self.with_plugins:
            overrides.update(PLUGINS=[], DISABLE_PLUGIN_AUTOLOAD="1")
        if self.keys is not None:
            self.keys.start()
            overrides.update(AUTH="jwt", APP_ID=self.app_id, OPENID_CONFIG_URL=self.keys.config_url)
        return create_app({**overrides, **settings})

    def close(self) -> None:
        if self.keys is not None:
            self.keys.stop()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@_target_options(tenant="replayed-tenant")
@click.option("--filter", "only", metavar="CALL_ID", help="Only this call's notifications.")
@click.option("--keep-timing", is_flag=True, help="Reproduce the original gaps between requests.")
@click.option("--speed", type=float, default=1.0, callback=_positive, help="With --keep-timing: 2 is twice as fast.")
def replay(run: Trial, paths: tuple[str, ...], only: str | None, keep_timing: bool, speed: float) -> int:
    """Post journal files, payload files or folders of them to a receiver, in order.

    A journal line that is not a record is skipped and named; the run then exits 1.
    """
    from ..journal import BadLine
    from ..replay import Result, collect, only_call, replay as post_all
    from ..transport import AppTarget, HttpTarget

    skipped: list[BadLine] = []

    def skip(bad: BadLine) -> None:
        skipped.append(bad)
        click.echo(f"comms-webhook: skipped {bad}", err=True)

    try:
        items = collect(paths, on_bad_line=skip)
    except ValueError as exc:
        click.echo(f"comms-webhook: {exc}", err=True)
        return 2
    if only:
        items = only_call(items, only)

    def report(result: Result) -> None:
        why = f"  ({result.error})" if result.error else ""
        click.echo(f"{result.status or 'ERR':>3}  {result.item.source}  {' '.join(result.item.call_ids())}{why}")

    try:
        target = HttpTarget(run.url) if run.url else AppTarget(run.app())
        token = run.token if run.keys is not None else None
        results = post_all(items, target, token=token, keep_timing=keep_timing, speed=speed, report=report)
    finally:
        run.close()
    failed = sum(1 for result in results if not result.ok)
    skipped_text = f", {len(skipped)} line(s) skipped: not journal records" if skipped else ""
    click.echo(f"{len(results)} request(s), {failed} not 2xx{skipped_text}", err=True)
    return 1 if failed or skipped else 0


@click.command()
@_target_options(tenant="simulated-tenant")
@click.option("--calls", "count", type=click.IntRange(min=1), default=50, show_default=True, help="How many calls.")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Client threads.")
@click.option("--duplicates", type=float, default=0.0, callback=_probability, help="P(a request is sent twice).")
@click.option("--reorder", type=float, default=0.0, callback=_probability, help="P(a request overtakes the next).")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed, the same calls and faults.")
@click.option("--admin-token", envvar="WEBHOOK_ADMIN_TOKEN", default="", help="--url: to read the calls back.")
@click.option("--fake-graph", "through_fake", is_flag=True, help="--in-process: ring calls from a fake Graph instead.")
def simulate(
    run: Trial,
    count: int,
    concurrency: int,
    duplicates: float,
    reorder: float,
    seed: int,
    admin_token: str,
    through_fake: bool,
) -> int:
    """Generate realistic calls, post them, and check every final state.

    With --fake-graph, a fake Graph rings the calls and your plugins' handlers act on them through its calls
    API (--plugins loads them); each call must end in the receiver as it ended in Graph.
    """
    from ..scenarios import make_calls
    from ..simulate import observe, plan, report, send_all
    from ..transport import AppTarget

    if through_fake:
        from .fake import simulate_through_fake

        if run.url:
            raise click.UsageError(
                "--fake-graph needs --in-process (for a receiver at a URL: comms-webhook fake-graph)"
            )
        return simulate_through_fake(run, count, duplicates=duplicates, reorder=reorder, seed=seed)

    scenarios = make_calls(count, seed=seed)
    bodies = plan(scenarios, duplicates=duplicates, reorder=reorder, seed=seed)
    headers = run.headers()
    click.echo(
        f"simulating {len(scenarios)} calls: {len(bodies)} requests, duplicates {duplicates}, "
        f"reorder {reorder}, seed {seed}",
        err=True,
    )
    try:
        if run.url:
            statuses = send_all(run.url, bodies, concurrency=concurrency, headers=headers, seed=seed)
            read = _reader(run.url, admin_token)
        else:
            app = run.app()
            target = AppTarget(app)
            sent = {"Content-Type": "application/json", **headers}
            statuses = [target.post(json.dumps(body), sent).status_code for body in bodies]
            read = _store_reader(app)
        lines, ok = report(observe(scenarios, read), statuses)
    finally:
        run.close()
    click.echo("\n".join(lines))
    return 0 if ok else 1


def _reader(url: str, admin_token: str) -> Callable[[str], dict[str, object] | None]:
    import urllib.error
    import urllib.request

    from ..errors import WebhookError

    base = url.rstrip("/").removesuffix("/api/calls")
    admin = {"Authorization": f"Bearer {admin_token}"}

    def read(call_id: str) -> dict[str, object] | None:
        request = urllib.request.Request(f"{base}/api/calls/{call_id}", headers=admin)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                doc: dict[str, object] = json.loads(response.read())
                return doc
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise WebhookError(f"the read API refused the admin token ({exc.code}): set --admin-token") from None
            return None

    return read


def _store_reader(app: Flask) -> Callable[[str], dict[str, object] | None]:
    from ..http import EXTENSION

    store = app.extensions[EXTENSION].store

    def read(call_id: str) -> dict[str, object] | None:
        call = store.get(call_id)
        return call.to_dict() if call is not None else None

    return read
