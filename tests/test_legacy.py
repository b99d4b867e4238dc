"""The legacy handshake: a body in the old Bot Framework calling format gets 204 (Graph then resends it in its
own format), through the real endpoint with Graph's JWT checked first; it is counted and never stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from webhook import create_app
from webhook.builders import envelope, incoming_call, new_id
from webhook.legacy import is_legacy_calling_body
from webhook.testing import LocalGraphKeys

from .conftest import ADMIN_TOKEN
from .support import CAPTURED, docs_files, load_json, metric_value

APP_ID = "6f1f5c00-1111-2222-3333-444455556666"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def legacy_incoming(call_id: str) -> dict[str, Any]:
    """An incoming call as the Bot Framework's calling API (before Graph) posted it."""
    return {
        "id": call_id,
        "participants": [
            {
                "identity": "29:1kMGSkuCPgD7ReaC5G4Xb3q3gn8",
                "languageId": "en-US",
                "originator": True,
            },
            {"identity": "28:c36b2e4e-3d32-4da4-9d5c-ac4a1a3b7ae5", "originator": False},
        ],
        "isMultiparty": False,
        "presentedModalityTypes": ["audio"],
        "callState": "incoming",
    }


def test_a_legacy_body_is_answered_204_counted_and_neither_stored_nor_journaled(
    webhook_keys: LocalGraphKeys, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    app = create_app(
        {
            "APP_ID": APP_ID,
            "OPENID_CONFIG_URL": webhook_keys.config_url,
            "STORE_URL": f"sqlite:///{tmp_path}/calls.sqlite3",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "JOURNAL_DIR": str(journal),
        }
    )
    client = app.test_client()
    signed = {"Authorization": f"Bearer {webhook_keys.token(aud=APP_ID)}"}
    call_id = new_id()
    counted = metric_value("legacy_handshakes_total")
    response = client.post("/api/calls", json=legacy_incoming(call_id), headers=signed)
    assert response.status_code == 204
    assert response.get_data() == b"" and "Content-Type" not in response.headers
    assert metric_value("legacy_handshakes_total") - counted == 1
    assert client.get(f"/api/calls/{call_id}", headers=ADMIN).status_code == 404
    assert client.get("/api/calls", headers=ADMIN).get_json()["count"] == 0
    assert not any(path.read_text() for path in journal.glob("*.jsonl"))
    # Graph then sends the call in its own format, which is taken as always.
    assert client.post("/api/calls", json=envelope(incoming_call(call_id)), headers=signed).status_code == 202
    assert client.get(f"/api/calls/{call_id}", headers=ADMIN).get_json()["state"] == "incoming"


def test_a_legacy_body_without_graphs_token_is_refused_as_any_other(
    webhook_keys: LocalGraphKeys, tmp_path: Path
) -> None:
    app = create_app(
        {"APP_ID": APP_ID, "OPENID_CONFIG_URL": webhook_keys.config_url, "STORE_URL": f"sqlite:///{tmp_path}/c.db"}
    )
    counted = metric_value("legacy_handshakes_total")
    response = app.test_client().post("/api/calls", json=legacy_incoming(new_id()))
    assert response.status_code == 401
    assert metric_value("legacy_handshakes_total") == counted


@pytest.mark.parametrize(
    ("body", "legacy"),
    [
        ({"id": "x", "callState": "established"}, True),
        ({"id": "x", "operationOutcome": {"type": "answerOutcome", "outcome": "success"}}, True),
        ({"id": "x", "callState": "incoming", "value": []}, False),  # a Graph envelope, however odd
        ({"callState": "incoming"}, False),  # no id: not a call of either format
        ({"id": "x", "participants": []}, False),  # nothing only the old format has
        ([{"id": "x", "callState": "incoming"}], False),
        ("callState", False),
    ],
)
def test_the_old_format_is_known_by_its_shape(body: Any, legacy: bool) -> None:
    assert is_legacy_calling_body(body) is legacy


@pytest.mark.payloads
def test_no_body_graph_really_sends_is_taken_for_the_old_format() -> None:
    bodies = [load_json(path) for path in docs_files()]
    bodies += [json.loads(path.read_text()) for path in sorted(CAPTURED.rglob("*.json"))]
    assert len(bodies) > 43
    assert not [body for body in bodies if is_legacy_calling_body(body)]
