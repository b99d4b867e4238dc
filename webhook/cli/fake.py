"""``comms-webhook fake-graph``: the fake Graph in real time, beside ``comms-webhook serve``, driven from a prompt."""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..fakegraph import FakeCall, FakeGraph
    from .tools import Trial

HELP = """commands:
  ring [NAME]            an incoming call from NAME (default Alice)
  meeting [NAME...]      a group call with these participants
  join CALL NAME         someone joins a group call
  press CALL KEY         the caller presses a key (0-9, *, #)
  hangup CALL            the other side hangs up
  advance SECONDS        move the clock on (unanswered calls end after 15 s)
  calls                  each call as Graph sees it
  requests               what the bot sent
  help, quit
CALL is a call id or its first characters; "last" is the newest call."""


@click.command("fake-graph")
@click.option(
    "--callback", required=True, metavar="URL", help="The receiver's callback URL: http://127.0.0.1:8000/api/calls."
)
@click.option("--app-id", default=None, help="The bot's App ID the fake signs notifications for (any by default).")
@click.option("--tenant", default=None, help="The tenant of the calls (a fixed test tenant by default).")
def fake_graph(callback: str, app_id: str | None, tenant: str | None) -> int:
    """Run a fake Microsoft Graph that calls the receiver back (real time), with a prompt to drive it.

    It prints the settings to start the receiver with, so that the receiver trusts its notifications and its
    handlers call it instead of Graph.
    """
    from ..fakegraph import FakeGraph

    fake = FakeGraph(callback_url=callback, realtime=True)
    fake.app_id, fake.tenant_id = app_id or fake.app_id, tenant or fake.tenant_id
    with fake:
        click.echo("fake Graph running; start the receiver with:")
        for name, value in fake.settings().items():
            click.echo(f"  export WEBHOOK_{name}={shlex.quote(value)}")
        click.echo(HELP)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] in ("quit", "exit"):
                break
            try:
                click.echo(_run(fake, words))
            except (LookupError, ValueError, RuntimeError) as exc:
                click.echo(f"error: {exc}")
            sys.stdout.flush()
    return 0


def _find(fake: FakeGraph, prefix: str) -> FakeCall:
    if prefix == "last" and fake.calls:
        return list(fake.calls.values())[-1]
    found = [call for call_id, call in fake.calls.items() if call_id.startswith(prefix)]
    if len(found) != 1:
        raise LookupError(f"{len(found)} calls match {prefix!r}")
    return found[0]


def _run(fake: FakeGraph, words: list[str]) -> str:
    command, args = words[0], words[1:]
    if command == "ring":
        call = fake.ring(source=args[0] if args else "Alice", wait=False)
        return f"ringing: call {call.id}"
    if command == "meeting":
        call = fake.meeting(participants=args or ("Alice", "Bob"), wait=False)
        return f"group call {call.id}"
    if command == "join":
        return f"joined: participant {fake.join(_find(fake, args[0]), args[1], wait=False)}"
    if command == "press":
        fake.press(_find(fake, args[0]), args[1], wait=False)
        return "pressed"
    if command == "hangup":
        fake.hang_up(_find(fake, args[0]), wait=False)
        return "hung up"
    if command == "advance":
        fake.advance(float(args[0]))
        return f"clock at {fake.now():.1f} s"
    if command == "calls":
        return "\n".join(f"{c.id}  {c.state:16}  {' -> '.join(c.history)}" for c in fake.calls.values()) or "no calls"
    if command == "requests":
        return "\n".join(f"{r.status}  {r.method} {r.action}  {r.call_id or ''}" for r in fake.requests) or "none"
    if command == "help":
        return HELP
    raise ValueError(f"unknown command {command!r} (help lists them)")


def simulate_through_fake(run: Trial, count: int, *, duplicates: float, reorder: float, seed: int) -> int:
    """``simulate --fake-graph``: ``count`` calls rung by a fake Graph at the in-process app (served on
    127.0.0.1), notifications duplicated and reordered at the given rates; the calls nobody answered end as
    Graph ends them (15 s on the fake's clock). Every call must be in the receiver's store as it is in Graph."""
    import random
    import threading
    from collections import Counter

    from werkzeug.serving import make_server

    from ..fakegraph import ANSWER_DEADLINE_SECONDS, FakeGraph, free_local_port
    from ..http import EXTENSION

    rng = random.Random(seed)
    outcomes: Counter[tuple[str, bool]] = Counter()
    port = free_local_port()  # the receiver's, known before its app is built: answer() names it
    with FakeGraph(f"http://127.0.0.1:{port}/api/calls", tls=True) as fake:
        try:
            app = run.app(AUTH="jwt", **fake.settings())
            server = make_server("127.0.0.1", port, app, threaded=True)
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            try:
                for number in range(1, count + 1):
                    if rng.random() < duplicates:
                        fake.duplicate_next()
                    if rng.random() < reorder:
                        fake.reorder_next()
                    fake.ring(source=f"Caller {number}")
                fake.settle(timeout=60)
                fake.advance(ANSWER_DEADLINE_SECONDS)
                fake.settle(timeout=60)
            finally:
                server.shutdown()
            store = app.extensions[EXTENSION].store
            for call in fake.calls.values():
                stored = store.get(call.id)
                outcomes[(" -> ".join(call.history), stored is not None and stored.state == call.state)] += 1
        finally:
            run.close()
        sent = Counter(request.action for request in fake.requests if request.action != "token")
    click.echo(f"{'as Graph saw the call':60}  {'calls':>5}  {'as in the receiver':>18}")
    for (history, agreed), number in sorted(outcomes.items()):
        click.echo(f"{history:60}  {number:>5}  {number if agreed else 0:>18}")
    requests = ", ".join(f"{action} {number}" for action, number in sorted(sent.items())) or "none"
    mismatched = sum(number for (_, agreed), number in outcomes.items() if not agreed)
    click.echo(f"the handlers sent: {requests}; {count - mismatched}/{count} calls as in Graph")
    return 0 if not mismatched else 1
