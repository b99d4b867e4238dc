"""What a test makes happen on the fake Graph's side of a call: someone rings the bot, a meeting the bot is in,
people joining, leaving, muted, a key pressed, the other side hanging up. Each is the notification Graph sends."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable

from ..builders import GRAPH, JSON
from . import calls as graph
from .calls import FakeCall


class Conversation:
    """The calls' other side, driven by the test (a part of :class:`~webhook.fakegraph.FakeGraph`)."""

    # Kept by FakeGraph, which this is a part of.
    _lock: threading.RLock
    calls: dict[str, FakeCall]
    tenant_id: str
    callback_url: str
    app_id: str
    operation_seconds: dict[str, float]

    def now(self) -> float:
        raise NotImplementedError

    def _notify(self, call: FakeCall, notifications: list[JSON], *, wait: bool) -> None:
        raise NotImplementedError

    def ring(
        self,
        *,
        source: str = "Alice",
        tenant_id: str | None = None,
        callback_url: str | None = None,
        app_id: str | None = None,
        wait: bool = True,
    ) -> FakeCall:
        """An incoming peer-to-peer call from the user ``source`` to the bot (``app_id``: one of :attr:`apps`,
        the fake's own by default): Graph's ``created`` notification.

        With ``wait`` (the default), returns once the bot answered that notification (its handlers that run
        before the 202 have run; what they caused follows: :meth:`settle`).
        """
        bot = app_id or self.app_id
        call = FakeCall(
            str(uuid.uuid4()),
            tenant_id or self.tenant_id,
            "incoming",
            "incoming",
            callback_url or self.callback_url,
            self.now(),
            source=_info(source, "user"),
            targets=[{"@odata.type": GRAPH + "invitationParticipantInfo", **_info("Bot", "application", bot)}],
            operation_seconds=self.operation_seconds,
            app_id=app_id or "",
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


def _info(name: str, kind: str, identity_id: str | None = None) -> JSON:
    return {
        "@odata.type": GRAPH + "participantInfo",
        "identity": {
            "@odata.type": GRAPH + "identitySet",
            kind: {"@odata.type": GRAPH + "identity", "displayName": name, "id": identity_id or str(uuid.uuid4())},
        },
    }
