"""pytest fixtures for testing a bot built on comms-webhook (registered through the ``pytest11`` entry point).

Everything goes through the real endpoint and the real token verification, against a local signing key::

    def test_greets_the_caller(webhook_on, replay, notifications):
        greeted = []

        @webhook_on.call_state("established")
        def greet(call):
            greeted.append(call.id)

        result = replay(notifications.scenario("answered_and_hung_up"))
        assert result.statuses == [202] * 5
        assert greeted == [result.call().id]

Fixtures: ``webhook_settings`` (override it to change settings), ``webhook_keys``, ``webhook_app``,
``webhook_client``, ``graph_token(**claims)``, ``replay(*sources)``, ``notifications`` (the body builders and the
docs' call lifecycles), ``webhook_on`` (the handler decorators; what a test registers is removed after it) and
``fake_graph`` (a fake Graph calling ``webhook_app`` back, served on 127.0.0.1).
"""

from __future__ import annotations

import inspect
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from . import builders, scenarios
from .app import create_app
from .fakegraph import FakeGraph, free_local_port
from .handlers import HANDLERS, on
from .model import Call
from .replay import Item, collect, replay as post_all
from .testing import LocalGraphKeys
from .transport import AppTarget

TEST_APP_ID = "11111111-2222-3333-4444-555555555555"
TEST_TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
TEST_ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def webhook_keys() -> Iterator[LocalGraphKeys]:
    """A local signing key whose JWKS is served on 127.0.0.1 for the whole session."""
    with LocalGraphKeys() as keys:
        yield keys


@pytest.fixture
def webhook_settings() -> dict[str, Any]:
    """Extra settings for ``webhook_app`` (names without the WEBHOOK_ prefix); override in your conftest."""
    return {}


@pytest.fixture
def fake_graph_server(webhook_keys: LocalGraphKeys) -> Iterator[FakeGraph]:
    """The fake Graph behind ``fake_graph`` (https, as Graph: msal talks to nothing else), with the port the
    receiver will listen on chosen already, so that the receiver's WEBHOOK_CALLBACK_URL can name it."""
    callback = f"http://127.0.0.1:{free_local_port()}/api/calls"
    with FakeGraph(callback, app_id=TEST_APP_ID, tenant_id=TEST_TENANT, keys=webhook_keys, tls=True) as fake:
        yield fake


@pytest.fixture
def webhook_app(
    request: pytest.FixtureRequest, tmp_path: Path, webhook_keys: LocalGraphKeys, webhook_settings: dict[str, Any]
) -> Flask:
    """A fresh receiver: its own SQLite store and journal in ``tmp_path``, verifying tokens of ``webhook_keys``;
    in a test that uses ``fake_graph``, pointed at it."""
    graph = request.getfixturevalue("fake_graph_server").settings() if "fake_graph" in request.fixturenames else {}
    settings = {
        "AUTH": "jwt",
        "APP_ID": TEST_APP_ID,
        "OPENID_CONFIG_URL": webhook_keys.config_url,
        "STORE_URL": f"sqlite:///{tmp_path / 'webhook-calls.sqlite3'}",
        "JOURNAL_DIR": str(tmp_path / "webhook-journal"),
        "ADMIN_TOKEN": TEST_ADMIN_TOKEN,
        "OUTBOX_SWEEP_SECONDS": 0,
        **graph,
        **webhook_settings,
    }
    return create_app(settings)


@pytest.fixture
def fake_graph(fake_graph_server: FakeGraph, webhook_app: Flask) -> Iterator[FakeGraph]:
    """A fake Graph (:class:`webhook.fakegraph.FakeGraph`) that calls ``webhook_app``, served on 127.0.0.1 for
    the test, back, and that the app's handlers act through (their ``actions``): ``fake_graph.ring()``, let
    your handlers act, assert on ``fake_graph.requests`` and ``fake_graph.calls``."""
    from werkzeug.serving import make_server

    port = urllib.parse.urlsplit(fake_graph_server.callback_url).port
    server = make_server("127.0.0.1", port or 0, webhook_app, threaded=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield fake_graph_server
        fake_graph_server.settle()
    finally:
        server.shutdown()


@pytest.fixture
def webhook_client(webhook_app: Flask) -> FlaskClient:
    return webhook_app.test_client()


@pytest.fixture
def graph_token(webhook_keys: LocalGraphKeys) -> Callable[..., str]:
    """``graph_token(aud=..., tid=..., iss=..., expires_in=..., claims=...)``: a token Graph could have sent."""

    def mint(**claims: Any) -> str:
        claims.setdefault("aud", TEST_APP_ID)
        claims.setdefault("tid", TEST_TENANT)
        return webhook_keys.token(**claims)

    return mint


@pytest.fixture
def notifications() -> SimpleNamespace:
    """The body builders (``envelope``, ``call_notification``, ``roster_notification``...) and
    ``scenario(name, call_id=None)``, a docs lifecycle as a list of bodies."""

    def scenario(name: str, call_id: str | None = None) -> list[dict[str, Any]]:
        return list(scenarios.SCENARIOS[name](call_id or builders.new_id()).bodies)

    names = [  # the builders' own functions: not what they import (Any, JSON...)
        name
        for name, value in vars(builders).items()
        if not name.startswith("_") and inspect.isfunction(value) and value.__module__ == builders.__name__
    ]
    return SimpleNamespace(
        scenario=scenario, scenarios=sorted(scenarios.SCENARIOS), **{n: getattr(builders, n) for n in names}
    )


@pytest.fixture
def webhook_on() -> Iterator[Any]:
    """The handler decorators (``webhook.on``); handlers registered during the test are disconnected after."""
    before = len(HANDLERS)
    yield on
    for handler in HANDLERS[before:]:
        handler.signal.disconnect(handler)
    del HANDLERS[before:]


@dataclass
class Replayed:
    """What ``replay`` did: the responses in order, and the calls they touched, as stored afterwards."""

    responses: list[Any]
    calls: dict[str, Call] = field(default_factory=dict)

    @property
    def statuses(self) -> list[int]:
        return [response.status_code for response in self.responses]

    def call(self, call_id: str | None = None) -> Call:
        """The one call replayed (or the call ``call_id``)."""
        if call_id is None:
            if len(self.calls) != 1:
                raise AssertionError(f"{len(self.calls)} calls were replayed; name the one you want")
            return next(iter(self.calls.values()))
        return self.calls[call_id]


def _replay_items(sources: Iterable[Any]) -> list[Item]:
    """What ``replay`` posts: bodies, single notifications (wrapped in an envelope), lists of them, and the
    items of files, folders and journals."""

    def as_item(body: Any) -> Item:
        bare = isinstance(body, dict) and "value" not in body and ("resourceUrl" in body or "resource" in body)
        return Item("body", json.dumps(builders.envelope(body) if bare else body))

    items: list[Item] = []
    for source in sources:
        if isinstance(source, dict):
            items.append(as_item(source))
        elif isinstance(source, (list, tuple)):
            items.extend(as_item(body) for body in source)
        else:
            items.extend(collect([source]))
    return items


@pytest.fixture
def replay(webhook_app: Flask, webhook_client: FlaskClient, graph_token: Callable[..., str]) -> Callable[..., Replayed]:
    """``replay(*sources, wait=False)``: post bodies (dicts), single notifications (wrapped in an envelope),
    lists of them, files, folders or journal files through the real endpoint, each signed with a fresh token;
    return the responses and the resulting calls. ``wait=True`` returns once the deferred handlers have run."""
    from .http import EXTENSION

    def run(*sources: Any, wait: bool = False) -> Replayed:
        result = Replayed([])
        store = webhook_app.extensions[EXTENSION].store
        for posted in post_all(_replay_items(sources), AppTarget(webhook_client), token=graph_token):
            result.responses.append(posted.answer)
            for call_id in posted.item.call_ids():
                result.calls.setdefault(call_id, None)  # type: ignore[arg-type]
        if wait:
            webhook_app.extensions[EXTENSION].delivery.drain()  # every queued deferred handler has run
        for call_id in list(result.calls):
            stored = store.get(call_id)
            if stored is None:
                del result.calls[call_id]
            else:
                result.calls[call_id] = stored
        return result

    return run
