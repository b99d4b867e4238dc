"""The ``comms-webhook`` command: serve the receiver, read the calls it stored.

Each command is a thin call into the modules; settings come from the same ``WEBHOOK_*`` variables as the
receiver, so ``comms-webhook calls`` reads the store ``comms-webhook serve`` writes.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from flask import Flask

from .app import create_app, load_settings
from .errors import WebhookError
from .http import EXTENSION, WebhookState
from .journal import BadLine
from .keys import fetch_keys
from .model import CALL_STATES, canonical_enum
from .replay import AppTarget, HttpTarget, Result, collect, only_call, replay
from .resources import canonical_id
from .simulate import make_calls, observe, plan, report, send_all
from .store import open_store
from .testing import LocalGraphKeys

APP_FACTORY = "webhook:create_app()"


def _serve(args: argparse.Namespace) -> int:
    # Build the app once here (settings, store, plugins), so that a mistake is one clear message, not a
    # traceback per worker; gunicorn's workers then build their own.
    settings = load_settings()
    create_app({"OUTBOX_SWEEP_SECONDS": 0}).extensions[EXTENSION].store.close()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",  # timeouts, graceful drain, metrics across workers, access log; read as a file: the master
        str(Path(__file__).with_name("gunicorn_conf.py")),  # process must not import the app
        "--bind",
        args.bind,
        "--workers",
        str(args.workers),
        APP_FACTORY,
    ]
    print(f"comms-webhook: serving on http://{args.bind}/api/calls, store {settings.masked_store_url}", file=sys.stderr)
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return 0  # not reached


def _calls(args: argparse.Namespace) -> int:
    settings = load_settings()
    store = open_store(settings.store_url, **settings.store_options())
    state = canonical_enum(args.state, CALL_STATES) if args.state else None
    calls = store.list_calls(state, args.limit, active=args.active)
    if args.json:
        print(json.dumps([call.to_dict() for call in calls], indent=2))
        return 0
    if not calls:
        print("no calls" + (f" in state {state}" if state else ""))
        return 0
    print(f"{'ID':36}  {'STATE':16}  {'UPDATED':24}  END REASON")
    for call in calls:
        print(f"{call.id:36}  {call.state or '-':16}  {call.updated_at:24}  {call.end_reason or ''}")
    return 0


def _call(args: argparse.Namespace) -> int:
    settings = load_settings()
    store = open_store(settings.store_url, **settings.store_options())
    call = store.get(canonical_id(args.call_id))
    if call is None:
        print(f"no call {args.call_id} in {settings.masked_store_url}", file=sys.stderr)
        return 1
    print(json.dumps(call.to_dict(), indent=2))
    return 0


def _check_auth(args: argparse.Namespace) -> int:
    settings = load_settings()
    print(f"OpenID configuration: {settings.openid_config_url}")
    try:
        snapshot = fetch_keys(settings.openid_config_url, timeout=settings.key_fetch_timeout_seconds)
    except (OSError, ValueError) as exc:
        print(f"FAILED: cannot fetch the signing keys: {exc}", file=sys.stderr)
        return 1
    print(f"issuer in the configuration: {snapshot.issuer or '(none)'}")
    print(f"JWKS: {snapshot.jwks_uri}")
    print(f"{len(snapshot.keys)} RSA signing key(s):")
    for entry in snapshot.raw_keys:
        print(f"  kid={entry['kid']}  {_certificate_expiry(entry)}")
    print(f"accepted issuers: {', '.join(settings.issuers)}")
    print(f"audience (WEBHOOK_APP_ID): {settings.app_id or '(not set: required with WEBHOOK_AUTH=jwt)'}")
    return 0


def _certificate_expiry(jwk: dict[str, object]) -> str:
    chain = jwk.get("x5c")
    if not isinstance(chain, list) or not chain:
        return "no certificate (x5c) published"
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(str(chain[0])))
    except ValueError as exc:
        return f"unreadable certificate: {exc}"
    return f"certificate expires {certificate.not_valid_after_utc.isoformat()}"


def _plugins(args: argparse.Namespace) -> int:
    state = _app_state()
    if not state.plugins:
        print("no plugins loaded (WEBHOOK_PLUGINS is empty and no installed distribution offers one)")
    for plugin in state.plugins:
        origin = f"{plugin.distribution} {plugin.version}" if plugin.distribution else "not from a distribution"
        print(f"{plugin.name}  [{plugin.source}; {origin}]")
        for handler in plugin.handlers:
            print(f"    {handler.describe()}")
        if not plugin.handlers:
            print("    (no handlers)")
    return 0


def _failures(args: argparse.Namespace) -> int:
    state = _app_state()
    store, delivery = state.store, state.delivery
    if args.retry or args.retry_all:
        wanted = [f.id for f in store.failures(limit=10_000)] if args.retry_all else args.retry
        code = 0
        for failure_id in wanted:
            failure = store.failure(failure_id)
            if failure is None or failure.status != "pending":
                print(f"#{failure_id}: no pending failure with this id", file=sys.stderr)
                code = 1
                continue
            error = delivery.retry(failure)
            print(f"#{failure_id} {failure.handler}: " + ("succeeded" if not error else "failed again"))
            if error:
                print(_indent(error.strip().splitlines()[-1]))
                code = 1
        return code
    failures = store.failures(include_resolved=args.all)
    if args.json:
        print(json.dumps([f.to_dict() for f in failures], indent=2))
        return 0
    if not failures:
        print("no pending handler failures" if not args.all else "no handler failures")
    for failure in failures:
        last_line = failure.error.strip().splitlines()[-1] if failure.error.strip() else ""
        print(
            f"#{failure.id}  {failure.status:8}  {failure.handler} on {failure.signal}  call {failure.call_id}  "
            f"attempts {failure.attempts}  last {failure.last_at}"
        )
        print(_indent(last_line))
    return 0


def _indent(text: str) -> str:
    return "    " + text


class _Signing:
    """``--token-key``/``--app-id``/``--tenant``: requests signed with a local key; an in-process app is given that
    key's JWKS, served here, so the requests go through real verification."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.keys = LocalGraphKeys.from_pem(args.token_key) if args.token_key else None
        if self.keys is not None and not args.app_id:
            raise WebhookError("--token-key needs --app-id (the audience the receiver expects)")
        self.app_id, self.tenant = args.app_id, args.tenant

    def token(self) -> str:
        assert self.keys is not None
        return self.keys.token(aud=self.app_id, tid=self.tenant)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"} if self.keys is not None else {}

    def in_process_app(self) -> Flask:
        overrides: dict[str, object] = {"OUTBOX_SWEEP_SECONDS": 0}
        if self.keys is not None:
            self.keys.start()
            overrides.update(AUTH="jwt", APP_ID=self.app_id, OPENID_CONFIG_URL=self.keys.config_url)
        return create_app(overrides)

    def close(self) -> None:
        if self.keys is not None:
            self.keys.stop()


def _replay(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        print("comms-webhook: --speed must be more than 0", file=sys.stderr)
        return 2
    skipped: list[BadLine] = []

    def skip(bad: BadLine) -> None:
        skipped.append(bad)
        print(f"comms-webhook: skipped {bad}", file=sys.stderr)

    try:
        items = collect(args.paths, on_bad_line=skip)
    except ValueError as exc:
        print(f"comms-webhook: {exc}", file=sys.stderr)
        return 2
    if args.filter:
        items = only_call(items, args.filter)
    signing = _Signing(args)
    target = HttpTarget(args.url) if args.url else AppTarget(signing.in_process_app())

    def report(result: Result) -> None:
        print(f"{result.status or 'ERR':>3}  {result.item.source}  {' '.join(result.item.call_ids())}")

    try:
        token = signing.token if signing.keys is not None else None
        results = replay(items, target, token=token, keep_timing=args.keep_timing, speed=args.speed, report=report)
    finally:
        signing.close()
    failed = sum(1 for result in results if not result.ok)
    skipped_text = f", {len(skipped)} line(s) skipped: not journal records" if skipped else ""
    print(f"{len(results)} request(s), {failed} not 2xx{skipped_text}", file=sys.stderr)
    return 1 if failed or skipped else 0


def _simulate(args: argparse.Namespace) -> int:
    for name in ("duplicates", "reorder"):
        if not 0 <= getattr(args, name) <= 1:
            print(f"comms-webhook: --{name} must be a probability from 0 to 1", file=sys.stderr)
            return 2
    scenarios = make_calls(args.calls, seed=args.seed)
    bodies = plan(scenarios, duplicates=args.duplicates, reorder=args.reorder, seed=args.seed)
    signing = _Signing(args)
    headers = signing.headers()
    admin = {"Authorization": f"Bearer {args.admin_token}"}
    print(
        f"simulating {len(scenarios)} calls: {len(bodies)} requests, duplicates {args.duplicates}, "
        f"reorder {args.reorder}, seed {args.seed}",
        file=sys.stderr,
    )
    if args.url:
        statuses = send_all(args.url, bodies, concurrency=args.concurrency, headers=headers, seed=args.seed)
        base = args.url.rstrip("/").removesuffix("/api/calls")

        def read(call_id: str) -> dict[str, object] | None:
            request = urllib.request.Request(f"{base}/api/calls/{call_id}", headers=admin)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    doc: dict[str, object] = json.loads(response.read())
                    return doc
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    raise WebhookError(
                        f"the read API refused the admin token ({exc.code}): set --admin-token"
                    ) from None
                return None
    else:
        app = signing.in_process_app()
        client = app.test_client()
        statuses = [client.post("/api/calls", json=body, headers=headers).status_code for body in bodies]
        store = app.extensions[EXTENSION].store

        def read(call_id: str) -> dict[str, object] | None:
            call = store.get(call_id)
            return call.to_dict() if call is not None else None

    try:
        lines, ok = report(observe(scenarios, read), statuses)
    finally:
        signing.close()
    print("\n".join(lines))
    return 0 if ok else 1


def _check_config(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except WebhookError as exc:
        print(f"PROBLEM: {exc.message}")
        return 1
    width = max(len(name) for name in settings.masked())
    for name, value in settings.masked().items():
        shown = ",".join(value) if isinstance(value, tuple) else value
        print(f"WEBHOOK_{name:{width}}  {shown}")
    problems: list[str] = []
    notes: list[str] = []
    try:
        settings.check_auth()
    except WebhookError as exc:
        problems.append(exc.message)
    try:
        store = open_store(settings.store_url, **settings.store_options())
        store.ping()
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
    else:
        notes.append("WEBHOOK_AUTH=disabled: anyone who reaches the URL can post notifications")
    if not settings.admin_token:
        notes.append("WEBHOOK_ADMIN_TOKEN is empty: the read API answers 403 and /metrics is open")
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("no problem found" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _app_state() -> WebhookState:
    """The app the receiver would run, plugins loaded: handlers and the store as the server sees them."""
    app = create_app({"OUTBOX_SWEEP_SECONDS": 0})
    state: WebhookState = app.extensions[EXTENSION]
    return state


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comms-webhook",
        description="The callback URL of a Microsoft Graph calling bot. Settings: WEBHOOK_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="start the receiver under gunicorn")
    serve.add_argument("--bind", default="127.0.0.1:8000", help="address to listen on (default %(default)s)")
    serve.add_argument("--workers", type=int, default=2, help="worker processes (default %(default)s)")
    serve.set_defaults(func=_serve)

    calls = commands.add_parser("calls", help="list the calls in the store, most recently updated first")
    calls.add_argument("--state", help="only calls in this state (established, terminated...)")
    calls.add_argument("--limit", type=int, default=50, help="at most this many (default %(default)s)")
    calls.add_argument("--active", action="store_true", help="only calls that have not ended")
    calls.add_argument("--json", action="store_true", help="print the calls as JSON")
    calls.set_defaults(func=_calls)

    check_config = commands.add_parser(
        "check-config", help="print the effective settings (secrets masked) and every problem found"
    )
    check_config.set_defaults(func=_check_config)

    check_auth = commands.add_parser("check-auth", help="fetch Graph's signing keys and print what was found")
    check_auth.set_defaults(func=_check_auth)

    plugins = commands.add_parser("plugins", help="list the loaded plugins and the handlers each registered")
    plugins.set_defaults(func=_plugins)

    failures = commands.add_parser("failures", help="list handler failures, or retry them")
    failures.add_argument("--all", action="store_true", help="include resolved failures")
    failures.add_argument("--json", action="store_true", help="print the failures as JSON")
    failures.add_argument("--retry", type=int, nargs="+", metavar="ID", help="run these failures' handlers again")
    failures.add_argument("--retry-all", action="store_true", help="run every pending failure's handler again")
    failures.set_defaults(func=_failures)

    replay_cmd = commands.add_parser(
        "replay", help="post journal files, payload files or folders of them to a receiver, in order"
    )
    replay_cmd.add_argument("paths", nargs="+", metavar="PATH")
    where = replay_cmd.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the receiver's callback URL, e.g. http://127.0.0.1:8000/api/calls")
    where.add_argument("--in-process", action="store_true", help="an app built here from the current settings")
    replay_cmd.add_argument("--filter", metavar="CALL_ID", help="only this call's notifications")
    replay_cmd.add_argument("--token-key", metavar="PEM", help="sign each request with this RSA private key")
    replay_cmd.add_argument("--app-id", help="the audience of the signed tokens (the bot's App ID)")
    replay_cmd.add_argument("--tenant", default="replayed-tenant", help="the tenant id of the signed tokens")
    replay_cmd.add_argument("--keep-timing", action="store_true", help="reproduce the original gaps")
    replay_cmd.add_argument("--speed", type=float, default=1.0, help="with --keep-timing: 2 replays twice as fast")
    replay_cmd.set_defaults(func=_replay)

    simulate = commands.add_parser("simulate", help="generate realistic calls, post them, check every final state")
    target = simulate.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="the receiver's callback URL, e.g. http://127.0.0.1:8000/api/calls")
    target.add_argument("--in-process", action="store_true", help="an app built here from the current settings")
    simulate.add_argument("--calls", type=int, default=50, help="how many calls (default %(default)s)")
    simulate.add_argument("--concurrency", type=int, default=8, help="client threads (default %(default)s)")
    simulate.add_argument("--duplicates", type=float, default=0.0, help="probability a request is sent twice")
    simulate.add_argument("--reorder", type=float, default=0.0, help="probability a request overtakes the next")
    simulate.add_argument("--seed", type=int, default=0, help="the same seed gives the same calls and faults")
    simulate.add_argument("--token-key", metavar="PEM", help="sign each request with this RSA private key")
    simulate.add_argument("--app-id", help="the audience of the signed tokens (the bot's App ID)")
    simulate.add_argument("--tenant", default="simulated-tenant", help="the tenant id of the signed tokens")
    simulate.add_argument(
        "--admin-token", default=os.environ.get("WEBHOOK_ADMIN_TOKEN", ""), help="to read the calls back (--url)"
    )
    simulate.set_defaults(func=_simulate)

    call = commands.add_parser("call", help="print one call: state, history, participants, operations")
    call.add_argument("call_id", metavar="ID")
    call.set_defaults(func=_call)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except WebhookError as exc:
        print(f"comms-webhook: {exc.message}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
