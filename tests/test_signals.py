"""Signals: strong references, isolation of failing receivers, senders that filter."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest

from webhook.builders import call_ended, envelope, incoming_call, new_id
from webhook.signals import call_state_changed, handler_failed

from .conftest import Recorder


def test_a_closure_connected_inside_a_function_keeps_receiving(poster: Any) -> None:
    heard: list[str] = []

    def connect_closure() -> None:
        call_state_changed.connect(lambda sender, **kw: heard.append(sender))

    connect_closure()
    gc.collect()
    poster(envelope(incoming_call(new_id())))
    assert heard == ["incoming"]


def test_connecting_to_one_state_hears_only_that_state(poster: Any) -> None:
    ended: list[tuple[str, str | None]] = []
    call_state_changed.connect(
        lambda sender, *, call, previous, **kw: ended.append((call.id, previous)), sender="terminated"
    )
    call_id = new_id()
    poster(envelope(incoming_call(call_id)))
    poster(envelope(call_ended(call_id)))
    assert ended == [(call_id, "incoming")]


def test_a_raising_receiver_does_not_stop_the_others_nor_the_request(
    client: Any, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    good: list[str] = []

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("handler bug")

    call_state_changed.connect(lambda sender, **kw: good.append("first"))
    call_state_changed.connect(broken)
    call_state_changed.connect(lambda sender, **kw: good.append("second"))
    call_id = new_id()
    with caplog.at_level(logging.ERROR, logger="webhook.signals"):
        response = client.post("/api/calls", json=envelope(incoming_call(call_id)))

    assert response.status_code == 202
    assert sorted(good) == ["first", "second"]
    (failure,) = [kwargs for name, _, kwargs in recorder.sent if name == "handler_failed"]
    assert failure["handler"].endswith("broken")
    assert isinstance(failure["exception"], RuntimeError)
    assert failure["call"].id == call_id
    assert "handler bug" in caplog.text and "Traceback" in caplog.text


def test_a_raising_failure_handler_is_only_logged(poster: Any, caplog: pytest.LogCaptureFixture) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("state handler bug")

    def broken_failure_handler(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("failure handler bug")

    call_state_changed.connect(broken)
    handler_failed.connect(broken_failure_handler)
    with caplog.at_level(logging.ERROR, logger="webhook.signals"):
        poster(envelope(incoming_call(new_id())))
    assert "state handler bug" in caplog.text and "failure handler bug" in caplog.text


def test_receivers_of_a_rejected_body_hear_nothing(client: Any, recorder: Recorder) -> None:
    body = envelope(incoming_call(new_id()), {"changeType": "updated"})
    assert client.post("/api/calls", json=body).status_code == 400
    assert recorder.sent == []


def test_the_package_exports_every_signal_declared_and_no_other() -> None:
    import webhook
    from webhook.signals import SIGNALS, IsolatedSignal

    exported = {name for name in webhook.__all__ if isinstance(getattr(webhook, name), IsolatedSignal)}
    assert exported == set(SIGNALS)
    assert all(getattr(webhook, name) is signal for name, signal in SIGNALS.items())
