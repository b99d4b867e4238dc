"""Keep-alive and resync against the fake Graph, through real receivers on real ports (JWT verification on).

The sweeps are run by the test (``sweeper.sweep()``) rather than by the sweeper thread, so that each step is
taken when the test says; the test of the whole bot under gunicorn (tests/test_bot.py) lets the sweepers run.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webhook import create_app, on
from webhook.actions import CallActions
from webhook.clock import iso
from webhook.errors import CallGone, GraphThrottled
from webhook.fakegraph import FakeGraph
from webhook.graph import GraphClient, actions_for
from webhook.http import EXTENSION
from webhook.model import Call, Party

from .conftest import ADMIN_TOKEN
from .support import Served, history_states, run_cli, serve_bot

PERIOD = 0.4


@pytest.fixture
def kept(fake: FakeGraph, tmp_path: Path) -> Iterator[Served]:
    """A receiver keeping calls alive every PERIOD seconds; stale after 0.3 s, and nothing swept unless asked."""
    served = serve_bot(fake, tmp_path, ADMIN_TOKEN, KEEPALIVE_SECONDS=PERIOD, STALE_AFTER_SECONDS=3600)
    yield served
    served.stop()


def sweep(served: Served) -> None:
    served.app.extensions[EXTENSION].sweeper.sweep()


def answered(fake: FakeGraph, served: Served) -> str:
    """A call rung and answered (from outside any handler), established in the receiver's store."""
    call = fake.ring()
    with served.app.app_context():
        actions_for(call.id, fake.tenant_id).answer()
    fake.settle()
    assert served.call(call.id)["state"] == "established"
    return call.id


def test_a_call_is_kept_alive_once_per_period_by_many_sweepers_and_no_more_once_it_ends(
    fake: FakeGraph, kept: Served, tmp_path: Path
) -> None:
    shared = {"STORE_URL": kept.app.extensions[EXTENSION].settings.store_url, "OUTBOX_SWEEP_SECONDS": 0}
    others = [create_app({**fake.settings(), **shared, "KEEPALIVE_SECONDS": PERIOD}) for _ in range(5)]
    sweepers = [kept.app, *others]
    call_id = answered(fake, kept)
    assert kept.call(call_id)["keepAliveAt"] is not None
    sweep(kept)
    assert fake.sent("keepAlive") == []  # not due yet: a period starts when the call is answered
    stop = threading.Event()

    def run(app: Any) -> None:
        while not stop.is_set():
            app.extensions[EXTENSION].sweeper.sweep()
            time.sleep(0.01)

    threads = [threading.Thread(target=run, args=(app,)) for app in sweepers]
    for thread in threads:
        thread.start()
    time.sleep(PERIOD * 4.5)
    fake.hang_up(fake.calls[call_id])  # the caller hangs up: terminated arrives, keep-alive stops
    fake.settle()
    time.sleep(PERIOD * 2.5)
    stop.set()
    for thread in threads:
        thread.join()
    sent = fake.sent("keepAlive")
    times = [request.at for request in sent]
    assert 3 <= len(sent) <= 5, times
    assert all(request.status == 200 and request.call_id == call_id for request in sent)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Six sweepers, one keepAlive per period: claims are a period apart, arrivals as much give or take the
    # latency of each request (a second request of one period would arrive within milliseconds of the first).
    assert min(gaps) > PERIOD / 2, gaps
    assert kept.call(call_id)["state"] == "terminated"
    assert max(times) < fake.deliveries[-1].at  # none after the terminated notification


def test_a_keepalive_answered_404_ends_the_call_here_once(fake: FakeGraph, kept: Served) -> None:
    ended: list[str | None] = []

    @on.call_state("terminated")
    def heard(call: Any, end_reason: str | None) -> None:
        ended.append(end_reason)

    call_id = answered(fake, kept)
    fake.never_send_terminated()
    fake.hang_up(fake.calls[call_id])  # Graph ends the call and never says so
    fake.settle()
    assert kept.call(call_id)["state"] == "established"
    time.sleep(PERIOD + 0.05)
    sweep(kept)
    stored = kept.call(call_id)
    assert stored["state"] == "terminated"
    assert stored["history"][-1]["origin"] == "keepAlive"
    assert "Graph no longer has the call" in stored["endReason"]
    assert stored["resultInfo"]["code"] == 404
    assert ended == [stored["endReason"]]
    time.sleep(PERIOD + 0.05)
    sweep(kept)
    assert [r.status for r in fake.sent("keepAlive")] == [404]  # stopped
    assert ended == [stored["endReason"]]  # signalled once


def test_a_keepalive_that_failed_is_tried_again_before_a_whole_period(fake: FakeGraph, tmp_path: Path) -> None:
    served = serve_bot(fake, tmp_path, ADMIN_TOKEN, KEEPALIVE_SECONDS=2)
    try:
        call_id = answered(fake, served)
        claimed_before = served.call(call_id)["keepAliveAt"]
        time.sleep(2.05)
        fake.fail_next("keepAlive", 503)  # no Retry-After: not retried at once, given back instead
        sweep(served)
        assert [r.status for r in fake.sent("keepAlive")] == [503]
        time.sleep(1.05)  # half a period (retries come at most a minute, at least half a period, after)
        sweep(served)
        assert [r.status for r in fake.sent("keepAlive")] == [503, 200]
        assert served.call(call_id)["keepAliveAt"] > claimed_before
    finally:
        served.stop()


def test_without_credentials_nothing_is_kept_alive(fake: FakeGraph, tmp_path: Path) -> None:
    served = serve_bot(fake, tmp_path, ADMIN_TOKEN, KEEPALIVE_SECONDS=PERIOD)
    try:
        assert served.app.extensions[EXTENSION].sweeper.upkeep is not None
    finally:
        served.stop()
    bare = create_app({"AUTH": "disabled", "STORE_URL": f"sqlite:///{tmp_path / 'bare.sqlite3'}"})
    assert bare.extensions[EXTENSION].sweeper.upkeep is None


def test_a_stale_call_that_graph_still_has_is_refreshed_from_it(fake: FakeGraph, tmp_path: Path) -> None:
    served = serve_bot(fake, tmp_path, ADMIN_TOKEN, STALE_AFTER_SECONDS=0.3, KEEPALIVE_SECONDS=0)
    heard: list[str] = []

    @on.stale
    def stale(call: Any) -> None:
        heard.append(f"stale {call.state}")

    @on.call_state("established")
    def established(call: Any) -> None:
        heard.append("established")

    try:
        call = fake.ring()
        fake.join(call, "Adele")
        fake.drop_next(3)  # the bot never hears establishing nor established
        with served.app.app_context():
            actions_for(call.id, fake.tenant_id).answer()
        fake.settle()
        assert served.call(call.id)["state"] == "incoming"
        time.sleep(0.4)
        sweep(served)
        stored = served.call(call.id)
        assert stored["state"] == "established"
        assert stored["staleSince"] is None
        assert stored["history"][-1] == {**stored["history"][-1], "from": "incoming", "origin": "resync"}
        names = [Party.from_info(entry["info"]).display_name for entry in stored["participants"]]  # type: ignore[union-attr]
        assert "Adele" in names  # joined while the bot heard nothing
        assert heard == ["stale incoming", "established"]
        assert [r.action for r in fake.requests if r.action in ("get", "participants")] == ["get", "participants"]
    finally:
        served.stop()


def test_a_stale_call_that_graph_no_longer_has_is_ended(fake: FakeGraph, tmp_path: Path) -> None:
    served = serve_bot(fake, tmp_path, ADMIN_TOKEN, STALE_AFTER_SECONDS=0.3, KEEPALIVE_SECONDS=0)
    try:
        call_id = answered(fake, served)
        fake.never_send_terminated()
        fake.hang_up(fake.calls[call_id])
        fake.settle()
        time.sleep(0.4)
        sweep(served)
        stored = served.call(call_id)
        assert history_states(stored)[-1] == "terminated"
        assert stored["history"][-1]["origin"] == "resync"
        assert "Graph no longer has the call" in stored["endReason"]
    finally:
        served.stop()


def test_resync_on_demand_from_the_command_line(fake: FakeGraph, kept: Served, tmp_path: Path) -> None:
    alive, gone = answered(fake, kept), answered(fake, kept)
    fake.never_send_terminated()
    fake.hang_up(fake.calls[gone])
    fake.settle()
    settings = kept.app.extensions[EXTENSION].settings
    env = {f"WEBHOOK_{name}": str(value) for name, value in fake.settings().items()}
    env["WEBHOOK_STORE_URL"] = settings.store_url
    result = run_cli("resync", alive, gone.upper(), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert f"{alive}: refreshed from Graph, established" in result.stdout
    assert f"{gone}: Graph no longer has it: ended here" in result.stdout
    assert kept.call(gone)["state"] == "terminated"
    nobody = "0a0a0a0a-1111-2222-3333-444444444444"
    unknown = run_cli("resync", nobody, cwd=tmp_path, env=env)
    assert unknown.returncode == 2 and "--tenant" in unknown.stderr
    nowhere = run_cli("resync", nobody, "--tenant", fake.tenant_id, cwd=tmp_path, env=env)
    assert nowhere.returncode == 1 and "neither Graph nor this store" in nowhere.stderr
    uncredentialed = run_cli("resync", alive, cwd=tmp_path, env={**env, "WEBHOOK_CLIENT_SECRET": ""})
    assert uncredentialed.returncode == 2 and "WEBHOOK_CLIENT_SECRET" in uncredentialed.stderr


def test_an_answer_after_graphs_15_seconds_is_logged_loudly_and_not_retried_past_them(
    fake: FakeGraph, kept: Served, caplog: pytest.LogCaptureFixture
) -> None:
    graph = GraphClient.from_settings(kept.app.extensions[EXTENSION].settings)
    late = fake.ring()
    fake.advance(16)  # Graph gave up on it: 408/1106
    # As a handler's actions have it: the call, whose history says when it came in.
    came_in = {"from": None, "to": "incoming", "changeType": "created", "at": iso(time.time() - 16)}
    acting = CallActions(graph, late.id, fake.tenant_id, fake.callback_url, call=Call(late.id, history=[came_in]))
    with caplog.at_level(logging.ERROR, "webhook.actions"), pytest.raises(CallGone):
        acting.answer()
    assert "16.0s after it came in" in caplog.text
    nearly = fake.ring()
    fake.fail_next("answer", 429, retry_after=2)  # 14 s in, a wait of 2 s would end past Graph's 15
    with pytest.raises(GraphThrottled):
        CallActions(graph, nearly.id, fake.tenant_id, fake.callback_url, incoming_at=time.time() - 14).answer()
    assert [r.status for r in fake.sent("answer")] == [404, 429]
