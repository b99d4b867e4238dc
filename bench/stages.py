"""The pipeline of one notification, timed stage by stage in process (SQLite, auth on, one handler).

Two traffics: ``fresh``, each notification the ``established`` of a call never seen before (the most a
transition writes: a new row in every index); ``lifecycles``, the docs' whole calls that ``bench/run.py`` sends
its servers (incoming to terminated, rosters, operations, tones), each body once, in an interleaved order.
"""

from __future__ import annotations

import json
import tempfile
import time
from typing import Any

from webhook import create_app, on
from webhook.builders import call_notification, envelope, new_id
from webhook.clock import utc_now
from webhook.http import EXTENSION
from webhook.parse import load_notifications
from webhook.receiver import decode_body
from webhook.scenarios import make_calls
from webhook.simulate import delivery
from webhook.store.base import Lease
from webhook.testing import LocalGraphKeys

#: What Graph sends along with each callback, kept in the journal.
GRAPH_HEADERS = {
    "Client-Request-Id": "b6ee35b9-7b26-4b25-9a4d-03e8c7a1c111",
    "Scenario-Id": "2f1a1100-b174-40a0-aba7-0b405e01ed92",
    "X-Microsoft-Skype-Chain-ID": "b0fe8425-6f48-41ed-9dd6-b706ff66319a",
    "User-Agent": "Microsoft-Skype/3.0,(Calling/1.0)",
}


def bodies_of(traffic: str, count: int) -> list[bytes]:
    """About ``count`` notifications of ``traffic`` (``fresh`` or ``lifecycles``), as the bodies Graph sends."""
    if traffic == "fresh":
        return [json.dumps(envelope(call_notification(new_id(), "established"))).encode() for _ in range(count)]
    bodies = delivery(make_calls(max(1, count // 5), seed=1), copies=1, seed=1)  # about 5 notifications a call
    return [json.dumps(body).encode() for body in bodies]


def stages(count: int = 2000, traffic: str = "fresh") -> dict[str, float]:
    """Microseconds per notification spent parsing, verifying, applying (the store's transaction, SQLite with
    its default durability), delivering (signals and handlers) and journaling, over about ``count``
    notifications of ``traffic`` (see the module's docstring); the body's verification and journal line are
    shared by the notifications it carries."""
    with tempfile.TemporaryDirectory() as folder, LocalGraphKeys() as keys:
        app = create_app(
            {
                "APP_ID": "bench",
                "OPENID_CONFIG_URL": keys.config_url,
                "LOG_LEVEL": "warning",
                "STORE_URL": f"sqlite:///{folder}/stages.db",
                "JOURNAL_DIR": f"{folder}/journal",
                "OUTBOX_SWEEP_SECONDS": 0,
            }
        )
        state = app.extensions[EXTENSION]
        seen: list[Any] = []
        handler = on.call_state("established")(lambda call: seen.append(call.id))
        header = f"Bearer {keys.token(aud='bench')}"
        raws = bodies_of(traffic, count)
        assert state.verifier is not None
        state.verifier.verify(header)  # keys fetched once, outside the timing
        totals = {
            "parse (JSON + schemas)": 0.0,
            "verify (JWT)": 0.0,
            "transition (store)": 0.0,
            "dispatch (signals, handler)": 0.0,
            "journal (one line)": 0.0,
        }
        assert state.journal is not None
        notifications = 0
        for raw in raws:
            t0 = time.perf_counter()
            carried = load_notifications(decode_body(raw))
            t1 = time.perf_counter()
            claims = state.verifier.verify(header)
            t2 = time.perf_counter()
            decisions = [
                state.store.apply(
                    notification.with_claims(claims),
                    utc_now(),
                    lease=Lease("bench", time.time() + 60, state.delivery.needs_delivery),
                )
                for notification in carried
            ]
            t3 = time.perf_counter()
            for decision in decisions:
                state.delivery.deliver(decision.events)
            t4 = time.perf_counter()
            state.journal.append(
                {"receivedAt": utc_now(), "headers": GRAPH_HEADERS, "tenant": claims.tenant_id, "body": raw.decode()}
            )
            t5 = time.perf_counter()
            for name, spent in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                totals[name] += spent
            notifications += len(carried)
        handler.__name__  # noqa: B018 - keep the handler referenced for the whole run
        state.store.close()  # its last delivered rows and its checkpoints, before the folder goes
    return {name: round(spent / notifications * 1e6, 1) for name, spent in totals.items()}
