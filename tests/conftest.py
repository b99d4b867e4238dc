from __future__ import annotations

import os
import shutil
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings

from webhook import create_app
from webhook.handlers import HANDLERS
from webhook.signals import SIGNALS

from .support import (
    CAPTURED,
    DOCS,
    NO_PAYLOADS,
    Gunicorn,
    RedisClusterServers,
    RedisServer,
    Served,
    redis_answers,
    serve_bot,
)

ADMIN_TOKEN = "admin-secret-for-tests"

# Generated tests check what is decided, never how fast: hypothesis' default 200 ms deadline per example fails
# them at random on a loaded 2-core CI machine.
settings.register_profile("comms-webhook", deadline=None)
settings.load_profile("comms-webhook")

_DESELECTED = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``payloads`` read Microsoft's published bodies and a real bot's captured calls from beside the
    repository. A fresh clone has none: those tests are deselected, and said so in one line at the end; CI sets
    COMMS_WEBHOOK_REQUIRE_PAYLOADS=1, which makes their absence an error."""
    if DOCS.is_dir() and CAPTURED.is_dir():
        return
    if os.environ.get("COMMS_WEBHOOK_REQUIRE_PAYLOADS") == "1":
        raise pytest.UsageError(f"{NO_PAYLOADS}, and COMMS_WEBHOOK_REQUIRE_PAYLOADS=1 requires them")
    deselected = [item for item in items if item.get_closest_marker("payloads")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("payloads")]
    config.stash[_DESELECTED] = len(deselected)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    count = config.stash.get(_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"{count} conformance tests deselected: {NO_PAYLOADS}. They run in CI; a fresh clone does not need them."
        )


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WEBHOOK_* variable of the developer's shell leaks into a test; journals go to the test's folder."""
    for name in list(os.environ):
        if name.startswith("WEBHOOK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WEBHOOK_JOURNAL_DIR", str(tmp_path / "journal"))


@pytest.fixture(autouse=True)
def reset_signal_receivers() -> Iterator[None]:
    """Signals and the handler registry are process-global: drop whatever a test connected."""
    before = {name: set(signal.receivers) for name, signal in SIGNALS.items()}
    handlers = list(HANDLERS)
    yield
    HANDLERS[:] = handlers
    for name, signal in SIGNALS.items():
        for receiver_id in set(signal.receivers) - before[name]:
            held = signal.receivers.get(receiver_id)
            receiver = held() if isinstance(held, weakref.ref) else held
            if receiver is not None:
                signal.disconnect(receiver)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "calls.sqlite3"


@pytest.fixture
def store_url(store_path: Path) -> str:
    return f"sqlite:///{store_path}"


@pytest.fixture
def app(store_url: str) -> Flask:
    return create_app({"AUTH": "disabled", "STORE_URL": store_url, "ADMIN_TOKEN": ADMIN_TOKEN})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Recorder:
    """Every signal sent while connected, as (signal name, sender, keyword arguments)."""

    sent: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)

    def names(self, signal: str | None = None) -> list[Any]:
        return [(name, sender) if signal is None else sender for name, sender, _ in self.sent if signal in (None, name)]

    def count(self, signal: str, sender: Any = None) -> int:
        return sum(1 for name, s, _ in self.sent if name == signal and (sender is None or s == sender))


#: Signals whose receivers answer a question (where a call goes, who may join) rather than hear an event: a
#: receiver connected to them is asked, which changes what the receiver does.
QUESTIONS = ("route_incoming", "participant_joining")


@pytest.fixture
def recorder() -> Recorder:
    recorder = Recorder()
    for name, signal in SIGNALS.items():
        if name in QUESTIONS:
            continue

        def receive(sender: Any, _name: str = name, **kwargs: Any) -> None:
            recorder.sent.append((_name, sender, kwargs))

        signal.connect(receive)  # a closure: only a strong reference keeps it
    return recorder


def post(client: FlaskClient, body: Any, **kwargs: Any) -> Any:
    return client.post("/api/calls", json=body, **kwargs)


@pytest.fixture
def poster(client: FlaskClient):  # type: ignore[no-untyped-def]
    def send(body: Any) -> Any:
        response = post(client, body)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response

    return send


@pytest.fixture
def read_call(client: FlaskClient, admin: dict[str, str]):  # type: ignore[no-untyped-def]
    def read(call_id: str) -> dict[str, Any]:
        response = client.get(f"/api/calls/{call_id}", headers=admin)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()  # type: ignore[no-any-return]

    return read


@pytest.fixture
def counting_server(tmp_path: Path) -> Iterator[tuple[Gunicorn, Path]]:
    """A real gunicorn with 4 workers on a fresh SQLite file; every signal heard is appended to the file."""
    count_file = tmp_path / "events.jsonl"
    env = {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": f"sqlite:///{tmp_path / 'calls.sqlite3'}",
        "WEBHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
        "COUNT_FILE": str(count_file),
    }
    server = Gunicorn("tests.apps.counting:create_app()", workers=4, env=env, log=tmp_path / "gunicorn.log")
    try:
        server.wait_ready("/api/calls?limit=1", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
        yield server, count_file
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis for the tests: $COMMS_WEBHOOK_TEST_REDIS_URL, else 127.0.0.1:6379 when it answers, else a
    redis-server started for the session. Without any, the Redis tests skip, except where
    COMMS_WEBHOOK_REQUIRE_REDIS=1 (CI) makes that a failure."""
    url = os.environ.get("COMMS_WEBHOOK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if redis_answers(url):
        yield url
        return
    if shutil.which("redis-server"):
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
        try:
            yield server.url
        finally:
            server.stop()
        return
    reason = f"no Redis answers at {url} and redis-server is not installed"
    if os.environ.get("COMMS_WEBHOOK_REQUIRE_REDIS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def redis_prefix(redis_server: str) -> Iterator[str]:
    """A key prefix of this test's own in the shared Redis; its keys are deleted afterwards."""
    import redis

    prefix = f"comms-webhook-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_server)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master Redis Cluster started for the session (redis-server and redis-cli); the URL of one node.
    Without them the cluster tests skip, except where COMMS_WEBHOOK_REQUIRE_REDIS=1 (CI) makes that a failure."""
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        reason = "redis-server and redis-cli are needed for a Redis Cluster"
        if os.environ.get("COMMS_WEBHOOK_REQUIRE_REDIS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


def _redis_settings(request: pytest.FixtureRequest, kind: str) -> dict[str, str]:
    if kind == "redis":
        return {
            "STORE_URL": request.getfixturevalue("redis_server"),
            "REDIS_PREFIX": request.getfixturevalue("redis_prefix"),
        }
    # A prefix of its own in the session's cluster, which only tests use.
    prefix = f"comms-webhook-test-{uuid.uuid4().hex[:12]}"
    return {"STORE_URL": request.getfixturevalue("redis_cluster"), "REDIS_PREFIX": prefix, "REDIS_CLUSTER": "1"}


@pytest.fixture(params=["redis", "redis-cluster"])
def shared_redis(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings for a shared store on each kind of Redis in turn: one server, and a cluster."""
    return _redis_settings(request, request.param)


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def any_store_settings(request: pytest.FixtureRequest, store_url: str) -> dict[str, str]:
    """Settings for each store engine in turn: one contract, SQLite and Redis (a server, a cluster)."""
    if request.param == "sqlite":
        return {"STORE_URL": store_url}
    return _redis_settings(request, request.param)


@pytest.fixture
def fake() -> Iterator[Any]:
    """A fake Graph over https (msal talks to https authorities only); tests/test_fakegraph.py has its own,
    over http."""
    from webhook.fakegraph import FakeGraph

    with FakeGraph(tls=True) as graph:
        yield graph


@pytest.fixture
def bot(fake: Any, tmp_path: Path) -> Iterator[Served]:
    """A receiver for the ``fake`` Graph (https, or the module's own), served as its callback."""
    served = serve_bot(fake, tmp_path, ADMIN_TOKEN)
    yield served
    served.stop()
