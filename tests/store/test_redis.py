"""What only the Redis store does: expiry of ended calls, indexes, outages, several instances."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from webhook import ConfigError, create_app
from webhook.builders import (
    call_ended,
    call_notification,
    envelope,
    incoming_call,
    new_id,
    operation_notification,
    participant,
    roster_notification,
    tone_notification,
)
from webhook.parse import load_notifications
from webhook.scenarios import SCENARIOS, make_calls
from webhook.simulate import delivery, send_all
from webhook.state import decide
from webhook.store import open_store
from webhook.store.redis import RedisStore

from ..conftest import ADMIN_TOKEN, Recorder
from ..support import Gunicorn, RedisServer, free_port, history_states, is_subsequence

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def redis_store(url: str, prefix: str, **options: Any) -> RedisStore:
    store = open_store(url, prefix=prefix, **options)
    assert isinstance(store, RedisStore)
    return store


def apply(store: RedisStore, body: dict[str, Any]) -> None:
    for notification in load_notifications(body):
        store.apply(notification, "2026-01-01T00:00:00.000Z")


def test_ended_calls_expire_and_active_ones_do_not(redis_server: str, redis_prefix: str) -> None:
    store = redis_store(redis_server, redis_prefix, retention_seconds=3600)
    call_id = new_id()
    apply(store, envelope(incoming_call(call_id)))
    assert store.client.ttl(store.key("call", call_id)) == -1  # no expiry while active
    apply(store, envelope(call_ended(call_id)))
    assert 3590 <= store.client.ttl(store.key("call", call_id)) <= 3600
    assert store.client.zscore(store.key("active"), call_id) is None


def test_listing_uses_the_indexes_and_forgets_expired_calls(redis_server: str, redis_prefix: str) -> None:
    store = redis_store(redis_server, redis_prefix)
    kept, expired = new_id(), new_id()
    for call_id in (kept, expired):
        apply(store, envelope(incoming_call(call_id)))
        apply(store, envelope(call_ended(call_id)))
    store.client.delete(store.key("call", expired))  # as if its retention had passed
    assert [c.id for c in store.list_calls("terminated")] == [kept]
    assert store.client.zscore(store.key("state", "terminated"), expired) is None
    assert store.client.zscore(store.key("state", "incoming"), kept) is None  # moved between state indexes


def test_an_unreachable_redis_answers_503_with_retry_after(recorder: Recorder) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app({"AUTH": "disabled", "STORE_URL": url, "ADMIN_TOKEN": ADMIN_TOKEN, "STORE_TIMEOUT_SECONDS": 0.5})
    client = app.test_client()
    response = client.post("/api/calls", json=envelope(incoming_call(new_id())))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"] == "store_unavailable"
    assert client.get("/api/calls", headers=ADMIN).status_code == 503
    assert recorder.count("call_state_changed") == 0


def test_a_password_in_the_url_is_masked(redis_server: str) -> None:
    store = open_store("redis://:s3cret@127.0.0.1:6379/0")
    assert "s3cret" not in store.url
    assert store.url == "redis://:***@127.0.0.1:6379/0"


def assert_consistent(store: RedisStore) -> list[dict[str, Any]]:
    """Every indexed call has its document, and sits in exactly the state index its document says."""
    client = store.client
    calls = []
    state_keys = [key for key in client.scan_iter(store.key("state", "*"))]
    for call_id in client.zrange(store.key("calls"), 0, -1):
        raw = client.get(store.key("call", call_id))
        assert raw is not None, f"call {call_id} is indexed but has no document"
        doc = json.loads(raw)
        indexed = [key.rsplit(":", 1)[-1] for key in state_keys if client.zscore(key, call_id) is not None]
        assert indexed == [doc["state"]], (call_id, indexed, doc["state"])
        calls.append(doc)
    return calls


@pytest.mark.slow
def test_three_instances_share_one_redis(tmp_path: Path, shared_redis: dict[str, str]) -> None:
    count_file = tmp_path / "events.jsonl"
    env = {
        "WEBHOOK_AUTH": "disabled",
        **{f"WEBHOOK_{name}": value for name, value in shared_redis.items()},
        "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
        "COUNT_FILE": str(count_file),
    }
    servers = [
        Gunicorn("tests.apps.counting:create_app()", workers=2, env=env, log=tmp_path / f"g{i}.log") for i in range(3)
    ]
    try:
        for server in servers:
            server.wait_ready("/api/calls?limit=1", ADMIN)
        calls = make_calls(500, seed=11)
        bodies = delivery(calls, copies=2, seed=11)
        statuses = send_all([s.url + "/api/calls" for s in servers], bodies, concurrency=16, seed=11)
        assert Counter(statuses) == {202: len(bodies)}
        heard = [json.loads(line) for line in count_file.read_text().splitlines()]
        transitions = Counter((e["call"], e["sender"]) for e in heard if e["signal"] == "call_state_changed")
        expected: Counter[tuple[str, str]] = Counter()
        for scenario in calls:
            call = servers[0].get_json(f"/api/calls/{scenario.call_id}", ADMIN)
            assert call["state"] == scenario.final_state, (scenario.name, call["history"])
            assert is_subsequence(history_states(call), scenario.states)
            expected.update((scenario.call_id, state) for state in history_states(call))
        assert transitions == expected  # exactly once across all instances and workers
        assert len({e["pid"] for e in heard}) >= 3
    finally:
        for server in servers:
            server.stop()
    url, prefix = shared_redis["STORE_URL"], shared_redis["REDIS_PREFIX"]
    assert_consistent(redis_store(url, prefix, redis_cluster="REDIS_CLUSTER" in shared_redis))


@pytest.mark.slow
def test_redis_stopped_in_the_middle_of_a_load(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path, persistent=True).start()
    env = {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": redis_server.url,
        "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
        "WEBHOOK_STORE_TIMEOUT_SECONDS": "1",
    }
    server = Gunicorn("webhook:create_app()", workers=2, env=env, log=tmp_path / "gunicorn.log")
    try:
        server.wait_ready("/api/calls?limit=1", ADMIN)
        names = ["answered_and_hung_up", "rejected", "redirected", "transferred"]
        calls = [SCENARIOS[names[i % len(names)]](new_id()) for i in range(120)]
        answers: dict[str, list[tuple[dict[str, Any], int]]] = {}
        stop_at = threading.Event()

        def deliver(scenario: Any) -> None:
            # Each call in its own order, so every 202 must leave its state in the history.
            for body in scenario.bodies:
                (status,) = send_all(server.url + "/api/calls", [body], concurrency=1)
                answers.setdefault(scenario.call_id, []).append((body, status))
                time.sleep(random.uniform(0.005, 0.03))

        threads = [threading.Thread(target=deliver, args=(c,)) for c in calls]
        for index, thread in enumerate(threads):
            thread.start()
            if index == len(threads) // 3:
                redis_server.stop()  # in the middle of the load
                stop_at.set()
            if index == 2 * len(threads) // 3:
                redis_server.start()  # same port, same data (append-only file)
        for thread in threads:
            thread.join()
        assert stop_at.is_set()
        statuses = Counter(status for pairs in answers.values() for _, status in pairs)
        assert set(statuses) <= {202, 503}, statuses
        assert statuses[503] > 0, "the outage should have been seen"

        # New calls go through, with no restart of the receivers.
        fresh = new_id()
        assert send_all(server.url + "/api/calls", [envelope(incoming_call(fresh))]) == [202]
        assert server.get_json(f"/api/calls/{fresh}", ADMIN)["state"] == "incoming"

        store = redis_store(redis_server.url, "comms-webhook")
        for call_id, pairs in answers.items():
            stored = store.get(call_id)
            accepted = [body for body, status in pairs if status == 202]
            if not accepted:
                continue
            assert stored is not None, f"call {call_id} got a 202 but is not stored"
            states = history_states(stored)
            for body in accepted:
                (notification,) = load_notifications(body)
                sent = "terminated" if notification.change_type == "deleted" else notification.data.get("state")
                assert sent in states, (call_id, sent, states)
        assert_consistent(store)
    finally:
        server.stop()
        redis_server.stop()


def test_a_notification_retried_after_a_failed_exec_is_a_duplicate(redis_server: str, redis_prefix: str) -> None:
    store = redis_store(redis_server, redis_prefix)
    call_id = new_id()
    (notification,) = load_notifications(envelope(call_notification(call_id, "established")))
    first = store.apply(notification, "t1")
    again = store.apply(notification, "t2")
    assert [e.name for e in first.events] == ["call_state_changed"]
    assert (again.outcome, again.events) == ("duplicate", ())
    with redis.Redis.from_url(redis_server) as client:
        assert client.exists(f"{redis_prefix}:call:{call_id}") == 1


@pytest.fixture
def evicting_redis(tmp_path: Path) -> Any:
    server = RedisServer(tmp_path, options=("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")).start()
    yield server
    server.stop()


def test_a_redis_that_evicts_keys_is_refused_at_start_unless_allowed(
    evicting_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"AUTH": "disabled", "STORE_URL": evicting_redis.url, "ADMIN_TOKEN": ADMIN_TOKEN}
    with pytest.raises(ConfigError, match=r"maxmemory-policy allkeys-lru.*WEBHOOK_REDIS_ALLOW_EVICTION=1"):
        create_app(settings)
    app = create_app({**settings, "REDIS_ALLOW_EVICTION": "1"})
    assert any("allkeys-lru" in r.message and "accepts that risk" in r.message for r in caplog.records)
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    assert client.post("/api/calls", json=envelope(incoming_call(new_id()))).status_code == 202


def test_a_policy_turned_evicting_at_run_time_stops_acknowledging_until_it_is_undone(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    try:
        app = create_app({"AUTH": "disabled", "STORE_URL": server.url, "ADMIN_TOKEN": ADMIN_TOKEN})
        client = app.test_client()
        assert client.post("/api/calls", json=envelope(incoming_call(new_id()))).status_code == 202
        admin = redis.Redis.from_url(server.url)
        admin.config_set("maxmemory-policy", "allkeys-random")
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["store"]["reason"] == "evicting"
        refused = client.post("/api/calls", json=envelope(incoming_call(call_id := new_id())))
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
        assert "evict" in refused.get_json()["message"]
        assert client.get(f"/api/calls/{call_id}", headers=ADMIN).status_code == 404
        admin.config_set("maxmemory-policy", "noeviction")
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/calls", json=envelope(incoming_call(call_id))).status_code == 202
    finally:
        server.stop()


def test_a_call_written_whole_by_the_previous_release_is_read_and_moved_to_its_keys(
    redis_server: str, redis_prefix: str
) -> None:
    store = redis_store(redis_server, redis_prefix)
    call_id = new_id()
    people = [participant("p-1", "Alice"), participant("p-2", "Bob")]
    bodies = [
        envelope(incoming_call(call_id)),
        envelope(call_notification(call_id, "established")),
        envelope(roster_notification(call_id, people)),
        envelope(operation_notification(call_id, "op-1")),
        envelope(tone_notification(call_id, "tone3", 7)),
    ]
    call = None
    for body in bodies:
        for notification in load_notifications(body):
            call = decide(call, notification, "2026-01-01T00:00:00.000Z").call
    assert call is not None
    old = call.to_dict()
    del old["historyTotal"], old["historyDropped"]  # what the previous release wrote: everything in one document
    store.client.set(store.key("call", call_id), json.dumps(old))
    assert store.get(call_id).to_dict()["participants"] == old["participants"]  # type: ignore[union-attr]
    apply(store, envelope(tone_notification(call_id, "tone3", 7)))  # heard already: a duplicate...
    apply(store, envelope(call_notification(call_id, "hold")))  # ...and a transition, whose commit moves it all
    record = json.loads(store.client.get(store.key("call", call_id)))
    assert "history" not in record and "participants" not in record
    now = store.get(call_id).to_dict()  # type: ignore[union-attr]
    assert history_states(now) == ["incoming", "established", "hold"]
    assert now["participants"] == old["participants"] and now["operations"] == old["operations"]
    assert [tone["sequenceId"] for tone in now["tones"]] == [7]
