"""Acting on one call through Graph: what a handler's ``actions`` argument is.

Each method is one request of the calls API (``/communications/calls/{id}/...``) for the call's tenant, with
the transport rules of :mod:`webhook.graph`. Long-running ones return an :class:`Operation`; its result comes
back as a notification, heard by ``@on.operation`` handlers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from .answering import ANSWER_LIMIT_SECONDS, answer_limit
from .clock import epoch
from .errors import GraphNotConfigured
from .graph import GraphClient
from .model import Call
from .operation import GRAPH, JSON, MediaPrompt, Operation, prompts_of, wait_for_state
from .replies import replying
from .store.base import CallStore

logger = logging.getLogger("webhook.actions")

#: Graph drops an incoming call not answered within 15 s; the answer's retries must end before that (a
#: policy-based recording call has 5: :func:`webhook.answering.answer_limit`).
ANSWER_DEADLINE_SECONDS = ANSWER_LIMIT_SECONDS


def identity(
    *, user: str | None = None, application: str | None = None, phone: str | None = None, name: str = ""
) -> JSON:
    """An ``invitationParticipantInfo`` for a user id, an application id or a phone number (E.164)."""
    if phone:
        who = {"phone": {"@odata.type": GRAPH + "identity", "id": phone}}
    elif application:
        who = {"application": {"@odata.type": GRAPH + "identity", "id": application, "displayName": name}}
    elif user:
        who = {"user": {"@odata.type": GRAPH + "identity", "id": user, "displayName": name}}
    else:
        raise ValueError("identity() needs user=, application= or phone=")
    return {
        "@odata.type": GRAPH + "invitationParticipantInfo",
        "identity": {"@odata.type": GRAPH + "identitySet", **who},
    }


def target_identity(target: str) -> JSON:
    """The :func:`identity` of a target written ``user:<id>``, ``application:<id>`` or ``phone:+<number>`` (as
    ``WEBHOOK_ANSWER_FALLBACK_TARGET`` is)."""
    kind, _, who = target.partition(":")
    if kind not in ("user", "application", "phone") or not who:
        raise ValueError(f"a target is user:<id>, application:<id> or phone:+<number>, not {target!r}")
    return identity(**{kind: who})


def incoming_at(call: Call | None) -> float | None:
    """When the receiver heard the call come in (epoch seconds), or None if it was never ``incoming`` here."""
    for step in call.history if call is not None else ():
        if step.get("to") == "incoming":
            at = step.get("at")
            return epoch(at) if isinstance(at, str) else None
    return None


class CallActions:
    """The calls API bound to one call and its tenant. ``callback_url`` is what ``answer()`` tells Graph;
    ``incoming_at`` (epoch) is when the call came in, from which ``answer()`` counts Graph's 15 seconds (by
    default read from ``call``'s history, when an answer needs it)."""

    def __init__(
        self,
        client: GraphClient,
        call_id: str,
        tenant_id: str,
        callback_url: str = "",
        store: CallStore | None = None,
        *,
        incoming_at: float | None = None,
        call: Call | None = None,
    ) -> None:
        self.client, self.call_id, self.tenant_id, self.callback_url = client, call_id, tenant_id, callback_url
        self.store = store
        self.incoming_at = incoming_at
        self.call = call

    def __repr__(self) -> str:
        return f"CallActions(call {self.call_id}, tenant {self.tenant_id})"

    def _post(self, action: str, body: JSON | None = None, *, deadline: float | None = None) -> Any:
        path = f"/communications/calls/{self.call_id}/{action}"
        return self.client.request(
            "POST",
            path,
            tenant_id=self.tenant_id,
            action=action,
            call_id=self.call_id,
            body=body or {},
            deadline=deadline,
        ).body

    def _operation(self, action: str, kind: str, body: JSON) -> Operation:
        return Operation.from_graph(self._post(action, body), self.call_id, kind, self.store)

    def wait_for_state(self, state: str, timeout: float = 30.0) -> Call:
        """Wait until the receiver's store has this call in ``state`` (or ended); see :func:`wait_for_state`."""
        if self.store is None:
            raise GraphNotConfigured("wait_for_state() needs the receiver's store: use the actions of a handler")
        return wait_for_state(self.store, self.call_id, state, timeout)

    # Replying to an incoming call

    def answer(
        self,
        *,
        callback_uri: str | None = None,
        modalities: Iterable[str] = ("audio",),
        media_config: JSON | None = None,
        participant_capacity: int | None = None,
        delta_roster: bool = False,
        deadline: float | None = None,
    ) -> None:
        """Answer with service-hosted media (Graph plays prompts and hears tones), to ``WEBHOOK_CALLBACK_URL``;
        with ``delta_roster``, Graph sends only who changed in each roster (``isDeltaRosterEnabled``).

        Retries that Graph asks for end before ``deadline`` (``time.monotonic()``; default: Graph's own limit,
        15 s after the call came in, 5 s for a policy-based recording call). An answer attempted later than that
        is logged as an error: Graph has most likely dropped the call (408/1106), and the answer fails with
        :class:`~webhook.errors.CallGone`. Raises :class:`~webhook.errors.AlreadyReplied`, sending nothing,
        when the answer-deadline guard rejected or redirected the call first.
        """
        callback = callback_uri or self.callback_url
        if not callback:
            raise GraphNotConfigured("answer() needs WEBHOOK_CALLBACK_URL, the public https URL of this receiver")
        limit = answer_limit(self.call)
        left = limit
        came_in = self.incoming_at if self.incoming_at is not None else incoming_at(self.call)
        if came_in is not None:
            age = time.time() - came_in
            left = max(0.0, limit - age)
            if age > limit:
                logger.error(
                    "answering call %s %.1fs after it came in: Graph drops a call not answered within %.0fs "
                    "(408/1106), so this answer most likely fails. Answer in a handler of call_state('incoming') "
                    "that runs before the 202 or is deferred without slow work ahead of it",
                    self.call_id,
                    age,
                    limit,
                )
        body: JSON = {
            "callbackUri": callback,
            "acceptedModalities": list(modalities),
            "mediaConfig": media_config or {"@odata.type": GRAPH + "serviceHostedMediaConfig"},
        }
        if participant_capacity is not None:
            body["participantCapacity"] = participant_capacity
        if delta_roster:
            body["callOptions"] = {"@odata.type": GRAPH + "incomingCallOptions", "isDeltaRosterEnabled": True}
        with replying(self.store, self.call_id, "answer"):
            self._post("answer", body, deadline=deadline or time.monotonic() + left)

    def reject(self, reason: str = "none", *, callback_uri: str | None = None) -> None:
        """Reject an incoming call: ``none``, ``busy`` or ``forbidden``."""
        body: JSON = {"reason": reason}
        if callback_uri:
            body["callbackUri"] = callback_uri
        with replying(self.store, self.call_id, "reject"):
            self._post("reject", body)

    def redirect(self, *targets: JSON, timeout: int | None = None) -> None:
        """Redirect an incoming call to up to 25 ``targets`` (:func:`identity`), ringing ``timeout`` s (15-90)."""
        body: JSON = {"targets": list(targets)}
        if timeout is not None:
            body["timeout"] = timeout
        with replying(self.store, self.call_id, "redirect"):
            self._post("redirect", body)

    # During the call

    def transfer(self, target: JSON, *, transferee: JSON | None = None) -> None:
        body: JSON = {"transferTarget": target}
        if transferee is not None:
            body["transferee"] = transferee
        self._post("transfer", body)

    def play_prompt(self, *prompts: str | MediaPrompt, client_context: str | None = None) -> Operation:
        """Play media URIs or :class:`MediaPrompt`s, in order (at most 20)."""
        return self._operation(
            "playPrompt", "playPrompt", _body(prompts=prompts_of(prompts), clientContext=client_context)
        )

    def record_response(
        self,
        *prompts: str | MediaPrompt,
        barge_in: bool = True,
        initial_silence_timeout: int = 5,
        max_silence_timeout: int = 5,
        max_record_duration: int = 30,
        play_beep: bool = True,
        stop_tones: Iterable[str] = ("#",),
        client_context: str | None = None,
    ) -> Operation:
        body = _body(
            prompts=prompts_of(prompts),
            bargeInAllowed=barge_in,
            initialSilenceTimeoutInSeconds=initial_silence_timeout,
            maxSilenceTimeoutInSeconds=max_silence_timeout,
            maxRecordDurationInSeconds=max_record_duration,
            playBeep=play_beep,
            stopTones=list(stop_tones),
            clientContext=client_context,
        )
        return self._operation("recordResponse", "record", body)

    def subscribe_to_tone(self, *, client_context: str | None = None) -> Operation:
        return self._operation("subscribeToTone", "subscribeToTone", _body(clientContext=client_context))

    def send_dtmf_tones(
        self, tones: Iterable[str], *, delay_ms: int | None = None, client_context: str | None = None
    ) -> Operation:
        body = _body(tones=list(tones), delayBetweenTonesMs=delay_ms, clientContext=client_context)
        return self._operation("sendDtmfTones", "sendDtmfTones", body)

    def cancel_media_processing(self, *, client_context: str | None = None) -> Operation:
        return self._operation("cancelMediaProcessing", "cancelMediaProcessing", _body(clientContext=client_context))

    def keep_alive(self) -> None:
        """Tell Graph the bot still has the call (at least every 45 minutes, or Graph ends it with 408/8537)."""
        self._post("keepAlive")

    def mute(self, *, client_context: str | None = None) -> Operation:
        return self._operation("mute", "muteParticipant", _body(clientContext=client_context))

    def unmute(self, *, client_context: str | None = None) -> Operation:
        return self._operation("unmute", "unmuteParticipant", _body(clientContext=client_context))

    def update_recording_status(self, status: str, *, client_context: str | None = None) -> Operation:
        """``recording``, ``notRecording`` or ``failed`` (compliance recording bots)."""
        body = _body(status=status, clientContext=client_context)
        return self._operation("updateRecordingStatus", "updateRecordingStatus", body)

    def invite(self, *participants: JSON, client_context: str | None = None) -> Operation:
        """Invite up to 5 participants (:func:`identity`) into the call."""
        body = _body(participants=list(participants), clientContext=client_context)
        return self._operation("participants/invite", "inviteParticipants", body)

    def hang_up(self) -> None:
        """End the bot's leg of the call (``DELETE``): Graph then sends terminating, then terminated."""
        path = f"/communications/calls/{self.call_id}"
        self.client.request("DELETE", path, tenant_id=self.tenant_id, action="delete", call_id=self.call_id)

    # Reading

    def get(self) -> JSON:
        """The call as Graph has it now."""
        path = f"/communications/calls/{self.call_id}"
        body = self.client.request("GET", path, tenant_id=self.tenant_id, action="get", call_id=self.call_id).body
        return body if isinstance(body, dict) else {}

    def participants(self) -> list[JSON]:
        path = f"/communications/calls/{self.call_id}/participants"
        body = self.client.request(
            "GET", path, tenant_id=self.tenant_id, action="participants", call_id=self.call_id
        ).body
        value = body.get("value") if isinstance(body, dict) else None
        return value if isinstance(value, list) else []


def _body(**fields: Any) -> JSON:
    return {name: value for name, value in fields.items() if value is not None}
