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

import copy
import json
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..builders import GRAPH, JSON
from ..testing import LocalGraphKeys
from . import actions, calls as graph
from .calls import ANSWER_DEADLINE_SECONDS, FakeCall, GraphError
from .notifier import Delivery, Notifier
from .server import STATUS_CODES, aad_error, graph_error, handler, route as route_of
from .tls import local_certificate, server_context

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
SCOPE = "https://graph.microsoft.com/.default"
#: The quirks of what Graph sends that :class:`FakeGraph` can switch on (see ``quirks=``).
QUIRKS = ("legacy_resource", "upper_ids", "string_codes", "unknown_fields")


@dataclass
class RecordedRequest:
    """One request the bot sent: ``action`` is ``answer``, ``playPrompt``..., ``delete``, ``get``, ``token``;
    ``at`` when it arrived (``time.time()``)."""

    method: str
    path: str
    action: str
    call_id: str | None
    headers: dict[str, str]
    body: Any
    status: int = 0
    at: float = field(default_factory=time.time)


@dataclass
class _Failure:
    status: int
    retry_after: float | None
    count: int
    message: str = "Injected by the test."


@dataclass
class _Token:
    tenant_id: str
    expires_at: float


@dataclass
class FakeGraph:
    """The fake Graph. ``callback_url`` is where notifications go when a call names none (the bot's default);
    ``app_id``/``client_secret`` the credentials the token endpoint accepts; ``keys`` the signing keys (a new
    :class:`~webhook.testing.LocalGraphKeys` by default, whose ``config_url`` the receiver must trust)."""

    callback_url: str = ""
    app_id: str = DEFAULT_APP_ID
    client_secret: str = "fake-client-secret"
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
        self._tokens: dict[str, _Token] = {}
        self._failures: dict[str, _Failure] = {}
        self._offset = 0.0
        self._started = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._certificate: tuple[Path, Path] | None = None
        self.notifier = Notifier(self._sign, self._envelope)

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

    # What the test does

    def ring(
        self,
        *,
        source: str = "Alice",
        tenant_id: str | None = None,
        callback_url: str | None = None,
        wait: bool = True,
    ) -> FakeCall:
        """An incoming peer-to-peer call from the user ``source`` to the bot: Graph's ``created`` notification.

        With ``wait`` (the default), returns once the bot answered that notification (its handlers that run
        before the 202 have run; what they caused follows: :meth:`settle`).
        """
        call = FakeCall(
            str(uuid.uuid4()),
            tenant_id or self.tenant_id,
            "incoming",
            "incoming",
            callback_url or self.callback_url,
            self.now(),
            source=_info(source, "user"),
            targets=[{"@odata.type": GRAPH + "invitationParticipantInfo", **_info("Bot", "application", self.app_id)}],
            operation_seconds=self.operation_seconds,
        )
        for entry in (graph.participant(source), graph.participant("Bot", kind="application")):
            call.participants[entry["id"]] = entry  # a roster follows only a change (mute, invite)
        with self._lock:
            self.calls[call.id] = call
        self._notify(call, [call.changed("created")], wait=wait)
        return call

    def meeting(
        self, *, participants: Iterable[str] = ("Alice", "Bob"), tenant_id: str | None = None, wait: bool = True
    ) -> FakeCall:
        """A group call the bot is in (joined or invited), established, with a roster of ``participants`` and
        the bot; :meth:`join`, :meth:`leave` and :meth:`mute_participant` change the roster."""
        call = FakeCall(
            str(uuid.uuid4()),
            tenant_id or self.tenant_id,
            "outgoing",
            "establishing",
            self.callback_url,
            self.now(),
            meeting_info={"@odata.type": GRAPH + "organizerMeetingInfo"},
            operation_seconds=self.operation_seconds,
        )
        bot = graph.participant("Bot", kind="application")
        call.participants[bot["id"]] = bot
        for name in participants:
            entry = graph.participant(name)
            call.participants[entry["id"]] = entry
        with self._lock:
            self.calls[call.id] = call
        first = call.changed("created")
        call.move("established")
        call.alive_at = self.now()
        self._notify(call, [first, call.changed(), call.roster()], wait=wait)
        return call

    def join(self, call: FakeCall, name: str, *, wait: bool = True) -> str:
        """Someone joins the call: a roster notification with them; returns their participant id."""
        entry = graph.participant(name)
        with self._lock:
            call.participants[entry["id"]] = entry
            roster = call.roster()
        self._notify(call, [roster], wait=wait)
        return str(entry["id"])

    def leave(self, call: FakeCall, participant_id: str, *, wait: bool = True) -> None:
        with self._lock:
            call.participants.pop(participant_id)
            roster = call.roster()
        self._notify(call, [roster], wait=wait)

    def mute_participant(self, call: FakeCall, participant_id: str, muted: bool = True, *, wait: bool = True) -> None:
        with self._lock:
            call.participants[participant_id]["isMuted"] = muted
            roster = call.roster()
        self._notify(call, [roster], wait=wait)

    def press(self, call: FakeCall, tone: str, *, wait: bool = True) -> None:
        """The caller presses a key (``"5"``, ``"#"``...): a call notification with ``toneInfo``."""
        names = {"*": "star", "#": "pound"}
        with self._lock:
            call.tones_sent += 1
            tone_info = {
                "@odata.type": GRAPH + "toneInfo",
                "sequenceId": call.tones_sent,
                "tone": f"tone{names.get(tone, tone)}",
            }
            notification = call.changed(toneInfo=tone_info)
        self._notify(call, [notification], wait=wait)

    def hang_up(self, call: FakeCall, *, wait: bool = True) -> None:
        """The other side hangs up: ``deleted`` with 200/4097 (ended by the other participant)."""
        with self._lock:
            notifications = call.end(graph.ENDED_BY_OTHER)
        self._notify(call, notifications, wait=wait)

    def app_token(self, tenant_id: str | None = None) -> str:
        """An app-only token for ``tenant_id``, asked of this fake's token endpoint as a bot's client would
        (client credentials, over HTTP): for a test's own Graph requests."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.app_id,
            "client_secret": self.client_secret,
            "scope": SCOPE,
        }
        request = urllib.request.Request(
            f"{self.authority_url}/{tenant_id or self.tenant_id}/oauth2/v2.0/token",
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
        )
        context = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else None
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return str(json.loads(response.read())["access_token"])

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

    # Faults

    def fail_next(
        self,
        action: str,
        status: int,
        *,
        retry_after: float | None = None,
        count: int = 1,
        message: str = "Injected by the test.",
    ) -> None:
        """Answer the next ``count`` requests of ``action`` (``answer``, ``playPrompt``, ``delete``, ``get``,
        ``token``...) with ``status`` and Graph's error body carrying ``message``, processing nothing (with
        ``Retry-After`` when given). A 3xx status redirects to the same URL (``Location``), as a region does."""
        with self._lock:
            self._failures[action] = _Failure(status, retry_after, count, message)

    def drop_connection_next(self, action: str) -> None:
        """Process the next request of ``action``, then close the connection without answering: the client
        cannot know whether Graph acted (it did)."""
        with self._lock:
            self._failures[action] = _Failure(0, None, 1, "")

    def drop_next(self, count: int = 1) -> None:
        """The next ``count`` notifications are never sent."""
        self.notifier.faults.drop += count

    def duplicate_next(self, count: int = 1) -> None:
        """The next ``count`` notifications are each sent twice."""
        self.notifier.faults.duplicate += count

    def reorder_next(self) -> None:
        """The next notification is overtaken by the one after it."""
        self.notifier.faults.reorder += 1

    def delay_notifications(self, seconds: float) -> None:
        """Every notification from now on waits ``seconds`` before it is sent (0 stops)."""
        self.notifier.faults.delay_seconds = seconds

    def never_send_terminated(self, on: bool = True) -> None:
        """Calls that end say nothing more: their ``deleted`` notification is never sent (users' most common
        complaint about Graph)."""
        self.notifier.faults.never_terminated = on

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
        self.notifier.send(call.callback_uri, call.tenant_id, notifications)
        if wait:
            self.settle()

    def _sign(self, tenant_id: str) -> str:
        assert self.keys is not None
        return self.keys.token(aud=self.app_id, tid=tenant_id, iss="https://graph.microsoft.com")

    def _envelope(self, notification: JSON) -> JSON:
        notification = copy.deepcopy(notification)
        quirks = set(self.quirks)
        if "upper_ids" in quirks:
            parts = notification["resourceUrl"].split("/")
            parts[3] = parts[3].replace("-", "").upper()
            notification["resourceUrl"] = "/".join(parts)
        if "legacy_resource" in quirks:
            notification["resource"] = notification["resourceUrl"].replace("/communications/calls/", "/app/calls/")
        data = notification.get("resourceData")
        if "string_codes" in quirks and isinstance(data, dict) and isinstance(data.get("resultInfo"), dict):
            for name in ("code", "subcode"):
                data["resultInfo"][name] = str(data["resultInfo"][name])
        if "unknown_fields" in quirks:
            notification["undocumentedField"] = {"addedBy": "a later Graph"}
            if isinstance(data, dict):
                data["undocumentedField"] = [1, 2, 3]
        return {"@odata.type": GRAPH + "commsNotifications", "value": [notification]}

    def _token(self, tenant_id: str, form: dict[str, str]) -> tuple[int, JSON]:
        if form.get("grant_type") != "client_credentials":
            return 400, aad_error("unsupported_grant_type", "AADSTS70003: grant_type must be client_credentials.")
        if form.get("client_id") != self.app_id:
            return 400, aad_error(
                "unauthorized_client", f"AADSTS700016: Application {form.get('client_id')} not found."
            )
        if form.get("client_secret") != self.client_secret and not form.get("client_assertion"):
            return 401, aad_error("invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if form.get("scope") != SCOPE:
            return 400, aad_error("invalid_scope", f"AADSTS1002012: The scope must be {SCOPE}.")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = _Token(tenant_id, time.time() + 3599)
        return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}

    def token_request(
        self, path: str, tenant_id: str, headers: Any, form: dict[str, str]
    ) -> tuple[int, JSON, dict[str, str]]:
        """Answer one request of the token endpoint (recorded as action ``token``): status, body, headers."""
        record = RecordedRequest("POST", path, "token", None, dict(headers.items()), form)
        with self._lock:
            self.requests.append(record)
        injected = self._injected("token")
        if injected is not None:
            record.status = injected.status
            return injected.status, aad_error("temporarily_unavailable", "AADSTS90033: injected."), injected.headers
        record.status, body = self._token(tenant_id, form)
        return record.status, body, {}

    def _authorize(self, headers: Any, call: FakeCall | None) -> None:
        scheme, _, token = str(headers.get("Authorization", "")).partition(" ")
        issued = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if issued is None or issued.expires_at < time.time():
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token is empty or was not issued by this Graph."
            )
        if call is not None and issued.tenant_id != call.tenant_id:
            raise GraphError(
                403, "Forbidden", f"The token is for tenant {issued.tenant_id}, the call is in {call.tenant_id}."
            )

    def _injected(self, action: str) -> GraphError | None:
        with self._lock:
            failure = self._failures.get(action)
            if failure is None:
                return None
            failure.count -= 1
            if failure.count <= 0:
                del self._failures[action]
        headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
        return GraphError(failure.status, STATUS_CODES.get(failure.status, "Error"), failure.message, headers)

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
            self.notifier.send(call.callback_uri, call.tenant_id, reply.then)
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


def _info(name: str, kind: str, identity_id: str | None = None) -> JSON:
    return {
        "@odata.type": GRAPH + "participantInfo",
        "identity": {
            "@odata.type": GRAPH + "identitySet",
            kind: {"@odata.type": GRAPH + "identity", "displayName": name, "id": identity_id or str(uuid.uuid4())},
        },
    }
