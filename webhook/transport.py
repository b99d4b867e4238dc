"""Posting bodies to a receiver: the one way replay, simulate, the CLI and the pytest plugin send callbacks.

A :class:`Target` takes a body and headers and gives back an :class:`Answer` (its ``status_code``, and for an
app in this process the whole test response), or raises :class:`Unreachable`.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol


class Unreachable(Exception):
    """A target could not be reached at all; the message says why."""


class Answer(Protocol):
    @property
    def status_code(self) -> int: ...


@dataclass(frozen=True)
class HttpAnswer:
    """What a receiver at a URL answered."""

    status_code: int
    body: bytes = b""


class Target(Protocol):
    def post(self, body: str | bytes, headers: dict[str, str]) -> Answer:
        """POST the body; return the answer, or raise :class:`Unreachable`."""
        ...


class HttpTarget:
    """A receiver at a URL (``http://host:port/api/calls``)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout

    def post(self, body: str | bytes, headers: dict[str, str]) -> HttpAnswer:
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return HttpAnswer(int(response.status), response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return HttpAnswer(int(exc.code), exc.read())
        except OSError as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise Unreachable(f"cannot reach {self.url}: {reason}") from exc


class AppTarget:
    """An app in this process (or one of its test clients), through Flask's test client; the answer is the
    test response itself."""

    def __init__(self, app_or_client: Any) -> None:
        is_client = hasattr(app_or_client, "application")
        self.client = app_or_client if is_client else app_or_client.test_client()

    def post(self, body: str | bytes, headers: dict[str, str]) -> Any:
        return self.client.post("/api/calls", data=body, headers=headers)
