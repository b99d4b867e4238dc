"""A whole calling bot under a real gunicorn (the shipped settings, 4 workers, one SQLite file) against the fake
Graph over https, its sweepers running: answering, greeting, hanging up, keeping calls alive and resyncing them,
and the transport rules (a 429 retried once, a 403 naming its permission, no POST sent twice).

The bot is tests/apps/calling_bot.py, a plugin as users write one; it notes what it did in a file.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webhook.actions import CallActions
from webhook.fakegraph import FakeCall, FakeGraph
from webhook.graph import GraphClient

from .conftest import ADMIN_TOKEN
from .support import SHIPPED_GUNICORN, Gunicorn, free_port, history_states, until

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KEEPALIVE = 1.0
STALE_AFTER = 2.5


class Bot:
    def __init__(self, server: Gunicorn, notes: Path, fake: FakeGraph) -> None:
        self.server, self.notes, self.fake = server, notes, fake

    def call(self, call_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.server.get_json(f"/api/calls/{call_id}", ADMIN)
        return doc

    def did(self, call_id: str) -> list[dict[str, Any]]:
        lines = self.notes.read_text().splitlines() if self.notes.exists() else []
        return [note for note in map(json.loads, lines) if note["call"] == call_id]

    def sent(self, call: FakeCall, *skip: str) -> list[tuple[str, int]]:
        return [(r.action, r.status) for r in self.fake.requests if r.call_id == call.id and r.action not in skip]


@pytest.fixture
def bot(fake: FakeGraph, tmp_path: Path) -> Iterator[Bot]:
    port = free_port()
    fake.callback_url = f"http://127.0.0.1:{port}/api/calls"
    notes = tmp_path / "bot.jsonl"
    env = {f"WEBHOOK_{name}": value for name, value in fake.settings().items()}
    env.update(
        {
            "WEBHOOK_DATA_DIR": str(tmp_path / "data"),
            "WEBHOOK_STORE_URL": f"sqlite:///{tmp_path / 'calls.sqlite3'}",
            "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
            "WEBHOOK_PLUGINS": "tests.apps.calling_bot",
            "WEBHOOK_DISABLE_PLUGIN_AUTOLOAD": "1",
            "WEBHOOK_KEEPALIVE_SECONDS": str(KEEPALIVE),
            "WEBHOOK_STALE_AFTER_SECONDS": str(STALE_AFTER),
            "WEBHOOK_OUTBOX_SWEEP_SECONDS": "0.1",
            "CALLING_BOT_LOG": str(notes),
        }
    )
    server = Gunicorn(
        "webhook:create_app()",
        workers=4,
        threads=None,
        env=env,
        log=tmp_path / "gunicorn.log",
        config=SHIPPED_GUNICORN,
        port=port,
    )
    try:
        server.wait_ready("/readyz", {})
        yield Bot(server, notes, fake)
    finally:
        server.stop()


def test_a_calling_bot_under_gunicorn_with_four_workers(fake: FakeGraph, bot: Bot) -> None:
    # A call that stays: kept alive by the sweepers of four workers while the other calls run.
    staying = fake.ring(source="Stay Sam")
    until(lambda: bot.call(staying.id)["mediaActiveAt"], "Sam's call established with media")
    kept_from = time.time()

    # Answered by a handler before the 202, greeted when media is active, hung up when the prompt has played.
    call = fake.ring(source="Hangup Harry")
    until(lambda: bot.call(call.id)["state"] == "terminated", "Harry's call ended")
    stored = bot.call(call.id)
    assert history_states(stored) == ["incoming", "establishing", "established", "terminating", "terminated"]
    assert stored["endReason"] == "The call was ended by the bot."
    assert bot.sent(call, "keepAlive", "get", "participants") == [("answer", 202), ("playPrompt", 200), ("delete", 204)]
    done = bot.did(call.id)
    assert [note["event"] for note in done] == ["answered", "prompt_started", "played", "hung_up", "ended"]
    assert done[2]["succeeded"] is True and done[2]["context"] == "Hangup Harry"
    pids = {note["pid"] for note in bot.did(staying.id) + done}
    for _ in range(8):  # the kernel may hand every callback so far to one worker: calls until another answers
        if len(pids) > 1:
            break
        extra = fake.ring(source="Hangup Harry")
        until(lambda: bot.call(extra.id)["state"] == "terminated", "another of Harry's calls ended")  # noqa: B023
        pids |= {note["pid"] for note in bot.did(extra.id)}
    assert len(pids) > 1, "the calls should spread over workers"

    # A 429 with Retry-After: the answer is sent again once, as Graph asks, and lands.
    fake.fail_next("answer", 429, retry_after=0.3)
    throttled = fake.ring(source="Throttled Theo")
    until(lambda: bot.call(throttled.id)["state"] == "established", "Theo's call established")
    answers = [r for r in fake.sent("answer") if r.call_id == throttled.id]
    assert [r.status for r in answers] == [429, 202]
    assert answers[0].headers["client-request-id"] == answers[1].headers["client-request-id"]

    # A 403: the handler gets GraphForbidden, naming the permission Graph names.
    fake.fail_next("subscribeToTone", 403, message="Application does not have permission Calls.AccessMedia.All.")
    tones = fake.ring(source="Tones Tina")
    forbidden = until(lambda: [n for n in bot.did(tones.id) if n["event"] == "forbidden"], "Tina's 403")
    assert forbidden == [{**forbidden[0], "permission": "Calls.AccessMedia.All", "status": 403}]

    # The connection drops after Graph received the prompt: surfaced to the handler, never sent again.
    fake.drop_connection_next("playPrompt")
    dropped = fake.ring(source="Dropped Dan")
    unreachable = until(lambda: [n for n in bot.did(dropped.id) if n["event"] == "prompt_unreachable"], "Dan's drop")
    assert unreachable[0]["sent"] is True
    until(lambda: [n for n in bot.did(dropped.id) if n["event"] == "played"], "Dan's prompt played after all")
    assert len([r for r in fake.sent("playPrompt") if r.call_id == dropped.id]) == 1

    # Graph ends a call and never says so: the next keepAlive is answered 404, and the call ends here.
    vanishing = fake.ring(source="Vanish Vera")
    until(lambda: bot.call(vanishing.id)["state"] == "established", "Vera's call established")
    fake.never_send_terminated()
    fake.hang_up(vanishing)
    fake.never_send_terminated(False)
    until(lambda: bot.call(vanishing.id)["state"] == "terminated", "Vera's call ended by keepAlive")
    assert bot.call(vanishing.id)["history"][-1]["origin"] == "keepAlive"
    assert [n["origin"] for n in bot.did(vanishing.id) if n["event"] == "ended"] == ["keepAlive"]

    # Stale calls, resynced: one Graph still has (the bot missed its answer's notifications), one it has not.
    graph = GraphClient(
        app_id=fake.app_id,
        client_secret=fake.client_secret,
        graph_url=fake.graph_url,
        authority_url=fake.authority_url,
        ca_bundle=fake.ca_bundle or "",
    )
    missed = fake.ring(source="Quiet Quinn")  # the bot leaves it; answered from outside, every callback lost
    fake.drop_next(3)
    CallActions(graph, missed.id, fake.tenant_id, fake.callback_url).answer()
    gone = fake.ring(source="Quiet Gus")
    fake.never_send_terminated()
    fake.hang_up(gone)
    fake.never_send_terminated(False)
    fake.settle()
    assert bot.call(missed.id)["state"] == bot.call(gone.id)["state"] == "incoming"
    until(lambda: bot.call(missed.id)["state"] == "established", "Quinn's call resynced", timeout=STALE_AFTER + 10)
    refreshed = bot.call(missed.id)
    assert refreshed["history"][-1]["origin"] == "resync" and refreshed["staleSince"] is None
    until(lambda: bot.call(gone.id)["state"] == "terminated", "Gus's call ended by resync", timeout=STALE_AFTER + 10)
    assert bot.call(gone.id)["history"][-1]["origin"] == "resync"
    assert "Graph no longer has the call" in bot.call(gone.id)["endReason"]

    # Sam's call was kept alive once per period across the four workers; it stops when Sam hangs up.
    time.sleep(max(0.0, kept_from + 4 * KEEPALIVE - time.time()))
    fake.hang_up(staying)
    until(lambda: bot.call(staying.id)["state"] == "terminated", "Sam's call ended")
    ended_at = time.time()
    time.sleep(2.5 * KEEPALIVE)
    kept = [r for r in fake.sent("keepAlive") if r.call_id == staying.id]
    assert all(r.status == 200 for r in kept)
    assert all(r.at < ended_at for r in kept)  # none once the call ended
    span = ended_at - kept_from
    assert span // KEEPALIVE - 1 <= len(kept) <= span // KEEPALIVE + 1, (len(kept), span)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(kept)]
    assert min(gaps) > KEEPALIVE / 2, gaps  # one per period, never two (they would be milliseconds apart)
