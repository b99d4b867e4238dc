"""Delivery of the fake Graph's notifications to the bot: in order, signed as Graph signs them, with faults.

One thread POSTs each body to its call's callback URL and waits for the answer before the next, so a bot that
acts inside a handler (before its 202) sees the consequences after it answered, as with Graph. Faults apply when
a notification is queued: dropped, sent twice, overtaken by the next one, delayed, and never a ``terminated``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


@dataclass
class Delivery:
    """One POST to the bot: where, what, what the bot answered (0: it could not be reached), and when it was
    sent (``time.time()``)."""

    url: str
    body: JSON
    status: int = 0
    at: float = field(default_factory=time.time)


@dataclass
class Faults:
    """What happens to the next notifications queued (each count is used up as it applies)."""

    drop: int = 0
    duplicate: int = 0
    reorder: int = 0
    delay_seconds: float = 0.0
    never_terminated: bool = False
    held: list[tuple[str, JSON, str | None]] = field(default_factory=list)  # overtaken, sent after the next one


def is_terminated(notification: JSON) -> bool:
    data = notification.get("resourceData")
    return (
        notification.get("changeType") == "deleted"
        and "/operations/" not in str(notification.get("resourceUrl"))
        and isinstance(data, dict)
    )


class Notifier:
    """Sends ``envelope(notification)`` bodies, one at a time, each with a fresh token from ``sign(tenant, app)``."""

    def __init__(
        self, sign: Callable[[str, str | None], str], envelope: Callable[[JSON], JSON], timeout: float = 30.0
    ) -> None:
        self.sign, self.envelope, self.timeout = sign, envelope, timeout
        self.faults = Faults()
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[tuple[str, str, JSON, str | None] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-graph-notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=self.timeout)
            self._thread = None

    def send(self, url: str, tenant_id: str, notifications: list[JSON], app_id: str | None = None) -> None:
        """Queue each notification (as its own body, as Graph mostly sends them), faults applied; signed for the
        bot ``app_id`` (the fake's own by default)."""
        with self._lock:
            for notification in notifications:
                faults = self.faults
                if faults.never_terminated and is_terminated(notification):
                    continue
                if faults.drop:
                    faults.drop -= 1
                    continue
                if faults.reorder:
                    faults.reorder -= 1
                    faults.held.append((url, notification, app_id))
                    continue
                copies = 2 if faults.duplicate else 1
                faults.duplicate = max(0, faults.duplicate - 1)
                for _ in range(copies):
                    self._queue.put((url, tenant_id, notification, app_id))
                while faults.held:
                    held_url, held, held_app = faults.held.pop(0)
                    self._queue.put((held_url, tenant_id, held, held_app))

    def settle(self, timeout: float = 10.0) -> None:
        """Return once every queued notification was delivered (held ones stay held)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._queue.unfinished_tasks} notification(s) still undelivered after {timeout}s")
            time.sleep(0.005)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self.faults.delay_seconds:
                    time.sleep(self.faults.delay_seconds)
                self._post(*item)
            finally:
                self._queue.task_done()

    def _post(self, url: str, tenant_id: str, notification: JSON, app_id: str | None) -> None:
        body = self.envelope(notification)
        delivery = Delivery(url, body)
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.sign(tenant_id, app_id)}",
                "User-Agent": "Microsoft-Skype/3.0,(Calling/1.0)",  # what real callbacks say
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                delivery.status = int(response.status)
        except urllib.error.HTTPError as exc:
            delivery.status = int(exc.code)
        except OSError:
            delivery.status = 0
        with self._lock:
            self.deliveries.append(delivery)
