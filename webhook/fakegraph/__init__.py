"""A fake Microsoft Graph on 127.0.0.1: the calls API a calling bot calls, which calls the bot back.

:class:`FakeGraph` serves, in a thread, on a port of its own:

- an OAuth token endpoint like Microsoft's (``POST {authority_url}/{tenant}/oauth2/v2.0/token``, client
  credentials; and the tenant's OpenID configuration, which msal reads first);
- the calls API under ``graph_url`` (``/communications/calls/...``): every action a service-hosted-media bot uses,
  with Graph's synchronous answers, its request checks and its error bodies (``404`` code ``8522`` once a call
  has ended), each request checked for a token it issued, for the call's tenant;
- the notifications that follow each action, POSTed to the call's ``callbackUri`` in the documented order and
  signed as Graph signs them (RS256, ``aud`` the app id, ``tid``, keys at ``config_url``).

A test rings the bot (:meth:`FakeGraph.ring`), lets its handlers act, and asserts on :attr:`FakeGraph.requests`
(everything the bot sent) and :attr:`FakeGraph.calls` (each call as Graph sees it). The clock is virtual
(:meth:`FakeGraph.advance`) unless ``realtime=True``: an incoming call nobody answers ends after 15 s, an
established call without ``keepAlive`` after 45 minutes, as Graph ends them.

Not imitated: media (prompts are not played, tones come only from the test's :meth:`FakeGraph.press`),
Graph's own retries, throttling other than what :meth:`FakeGraph.fail_next` injects, and the Bot Framework's
legacy calling format.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..builders import JSON
from ..testing import LocalGraphKeys
from . import actions, calls as graph
from .calls import ANSWER_DEADLINE_SECONDS, FakeCall, GraphError, RecordedRequest
from .conversation import Conversation
from .faults import Faults, InjectedFailure
from .notifier import Delivery, Notifier
from .quirks import QUIRKS, with_quirks
from .server import graph_error, handler, route as route_of
from .tls import local_certificate, server_context
from .tokens import IssuedToken, TokenEndpoint

__all__ = [
    "ANSWER_DEADLINE_SECONDS",
    "DEFAULT_APP_ID",
    "DEFAULT_TENANT",
    "QUIRKS",
    "Delivery",
    "FakeCall",
    "FakeGraph",
    "GraphError",
    "RecordedRequest",
    "free_local_port",
]

DEFAULT_APP_ID = "11111111-2222-3333-4444-555555555555"
DEFAULT_TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


@dataclass
class FakeGraph(Conversation, Faults, TokenEndpoint):
    """The fake Graph. ``callback_url`` is where notifications go when a call names none (the bot's default);
    ``app_id``/``client_secret`` the credentials the token endpoint accepts (and ``apps``, app id to secret,
    those of more bots: :meth:`ring` one of them with ``app_id``); ``keys`` the signing keys (a new
    :class:`~webhook.testing.LocalGraphKeys` by default, whose ``config_url`` the receiver must trust)."""

    callback_url: str = ""
    app_id: str = DEFAULT_APP_ID
    client_secret: str = "fake-client-secret"
    apps: dict[str, str] = field(default_factory=dict)
    tenant_id: str = DEFAULT_TENANT
    keys: LocalGraphKeys | None = None
    realtime: bool = False
    tls: bool = False
    quirks: Iterable[str] = ()
    operation_seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, FakeCall] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = set(self.quirks) - set(QUIRKS)
        if unknown:
            raise ValueError(f"unknown quirks {sorted(unknown)}; known: {', '.join(QUIRKS)}")
        self._own_keys = self.keys is None
        self.keys = self.keys or LocalGraphKeys()
        self._lock = threading.RLock()
        self._tokens: dict[str, IssuedToken] = {}
        self._failures: dict[str, InjectedFailure] = {}
        self._offset = 0.0
        self._started = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._certificate: tuple[Path, Path] | None = None
        self.notifier = Notifier(self._sign, lambda notification: with_quirks(notification, self.quirks))

    # Serving

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("start() the fake Graph first")
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ca_bundle(self) -> str | None:
        """With ``tls=True``: the PEM file of the fake's self-signed certificate, for a client to trust
        (``WEBHOOK_GRAPH_CA_BUNDLE``)."""
        return str(self._certificate[0]) if self._certificate else None

    @property
    def graph_url(self) -> str:
        """What ``WEBHOOK_GRAPH_URL`` should be (``https://graph.microsoft.com/v1.0`` for the real one)."""
        return f"{self.url}/v1.0"

    @property
    def authority_url(self) -> str:
        """What ``WEBHOOK_AUTHORITY_URL`` should be (``https://login.microsoftonline.com`` for the real one)."""
        return self.url

    @property
    def config_url(self) -> str:
        """The OpenID configuration of the keys that sign the notifications (``WEBHOOK_OPENID_CONFIG_URL``)."""
        assert self.keys is not None
        return self.keys.config_url

    def settings(self) -> dict[str, str]:
        """The receiver's settings (names without ``WEBHOOK_``) that point it at this fake Graph."""
        return {
            "APP_ID": self.app_id,
            "OPENID_CONFIG_URL": self.config_url,
            "GRAPH_URL": self.graph_url,
            "AUTHORITY_URL": self.authority_url,
            "CLIENT_SECRET": self.client_secret,
            **({"CALLBACK_URL": self.callback_url} if self.callback_url else {}),
            **({"GRAPH_CA_BUNDLE": self.ca_bundle} if self.ca_bundle else {}),
        }

    def start(self) -> FakeGraph:
        assert self.keys is not None
        if self._own_keys:
            self.keys.start()
        request_handler = handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), request_handler)
        self._server.daemon_threads = True
        if self.tls:
            self._certificate = local_certificate()
            context = server_context(*self._certificate)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-graph", daemon=True).start()
        self.notifier.start()
        if self.realtime:
            self._ticker = threading.Thread(target=self._tick, name="fake-graph-clock", daemon=True)
            self._ticker.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.notifier.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._own_keys and self.keys is not None:
            self.keys.stop()

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every notification sent so far has been delivered and answered."""
        self.notifier.settle(timeout)

    # The clock

    def now(self) -> float:
        """Seconds on the fake's clock (virtual unless ``realtime``; :meth:`advance` moves it on)."""
        return time.monotonic() - self._started + self._offset if self.realtime else self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock on: unanswered calls end after 15 s, calls without keepAlive after 45 minutes, running
        operations complete when their time comes."""
        with self._lock:
            self._offset += seconds
        self._expire()

    def _tick(self) -> None:
        while not self._stopping.wait(0.5):
            self._expire()

    def _expire(self) -> None:
        now = self.now()
        with self._lock:
            due: list[tuple[FakeCall, list[JSON]]] = []
            for call in self.calls.values():
                if call.ended:
                    continue
                if call.state == "incoming" and now - call.created_at >= graph.ANSWER_DEADLINE_SECONDS:
                    due.append((call, call.end(graph.NOT_ANSWERED)))
                elif call.alive_at is not None and now - call.alive_at >= graph.KEEPALIVE_LIMIT_SECONDS:
                    due.append((call, call.end(graph.KEEPALIVE_TIMEOUT)))
                elif call.operations:
                    finished = call.due_operations(now)
                    if finished:
                        due.append((call, finished))
        for call, notifications in due:
            self._notify(call, notifications, wait=False)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every notification POSTed to the bot, with the status the bot answered."""
        return list(self.notifier.deliveries)

    def sent(self, action: str) -> list[RecordedRequest]:
        """The requests of one kind the bot sent (``answer``, ``playPrompt``, ``delete``...)."""
        return [request for request in self.requests if request.action == action]

    # Inside

    def _notify(self, call: FakeCall, notifications: list[JSON], *, wait: bool) -> None:
        if not call.callback_uri:
            raise RuntimeError("the fake Graph has no callback URL for this call: give FakeGraph(callback_url=...)")
        self.notifier.send(call.callback_uri, call.tenant_id, notifications, call.app_id or None)
        if wait:
            self.settle()

    def _sign(self, tenant_id: str, app_id: str | None = None) -> str:
        assert self.keys is not None
        return self.keys.token(aud=app_id or self.app_id, tid=tenant_id, iss="https://graph.microsoft.com")

    def handle(self, method: str, path: str, headers: Any, body: Any) -> tuple[int, Any, dict[str, str]]:
        """Answer one Graph request: status, JSON body (or None), headers. Records it in :attr:`requests`."""
        route, call_id = route_of(method, path)
        record = RecordedRequest(method, path, route, call_id, dict(headers.items()), body)
        with self._lock:
            self.requests.append(record)
        try:
            status, answer, extra = self._dispatch(route, call_id, headers, body)
        except GraphError as exc:
            status, answer, extra = exc.status, graph_error(exc, headers), exc.headers
            if 300 <= exc.status < 400:
                answer, extra = None, {**exc.headers, "Location": path}
        record.status = status
        return status, answer, extra

    def _dispatch(self, route: str, call_id: str | None, headers: Any, body: Any) -> tuple[int, Any, dict[str, str]]:
        if route == "unknown":
            raise GraphError(404, "UnknownResource", "This fake Graph serves /communications/calls only.")
        injected = self._injected(route)
        if injected is not None and injected.status == 0:  # drop_connection_next: act, then say nothing
            self._dispatch(route, call_id, headers, body)
            raise ConnectionAbortedError("dropped by the test after processing")
        if injected is not None:
            raise injected
        with self._lock:
            call = self.calls.get(call_id) if call_id else None
            self._authorize(headers, call)
            if call is None or call.ended:
                raise graph.call_gone(str(call_id))
            if route == "get":
                return 200, {"id": call.id, **call.resource()}, {}
            if route == "participants":
                return 200, {"value": list(call.participants.values())}, {}
            reply = self._act(route, call, body)
        if reply.then:
            self.notifier.send(call.callback_uri, call.tenant_id, reply.then, call.app_id or None)
        return reply.status, reply.body, reply.headers

    def _act(self, route: str, call: FakeCall, body: Any) -> actions.Reply:
        """Carry out an action (or the DELETE) on a call that is still up; under the lock."""
        if route == "delete":
            return actions.hang_up(call, self.now())
        action = actions.ACTIONS.get(route)
        if action is None:
            raise GraphError(400, "BadRequest", f"Unknown action {route}.")
        if not isinstance(body, dict):
            raise graph.bad_request("The request body must be a JSON object.")
        return action(call, body, self.now())


def free_local_port() -> int:
    """A port free on 127.0.0.1 now: for a receiver whose callback URL must be known before it starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
