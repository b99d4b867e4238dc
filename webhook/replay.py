"""Replaying what Graph sent: journal files, single payload files, folders of them, into a receiver.

:func:`collect` reads the sources in order (a folder's files in name order), :func:`only_call` keeps one call
out of a busy journal, and :func:`replay` posts each body, optionally signed and with the original gaps, to a
target (:mod:`webhook.transport`: a URL or an app in this process), calling back once per request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .clock import epoch
from .journal import BadLine, read_records
from .resources import ResourceError, canonical_id, parse_resource
from .transport import Answer, Target, Unreachable


@dataclass(frozen=True)
class Item:
    """One request to replay: its body as JSON text, where it came from, and (from a journal) when and how."""

    source: str
    body: str
    received_at: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def call_ids(self) -> list[str]:
        """The calls the body's notifications are about, in order, each once."""
        found: list[str] = []
        for notification in _notifications(self.body):
            call_id = _call_id(notification)
            if call_id and call_id not in found:
                found.append(call_id)
        return found


@dataclass(frozen=True)
class Result:
    """What the target answered to one item: an HTTP status (and the whole answer), or 0 and why it could not
    be reached."""

    item: Item
    status: int
    error: str = ""
    answer: Answer | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _notifications(body: str) -> list[Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    value = doc.get("value") if isinstance(doc, dict) else None
    return value if isinstance(value, list) else []


def _call_id(notification: Any) -> str | None:
    if not isinstance(notification, dict):
        return None
    url = notification.get("resourceUrl") or notification.get("resource")
    try:
        return parse_resource(url).call_id if isinstance(url, str) else None
    except ResourceError:
        return None


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for child in sorted(path.iterdir(), key=lambda p: p.name):
            if child.is_dir() or child.suffix in (".json", ".jsonl"):
                yield from _files(child)
    else:
        yield path


def collect(paths: Iterable[str | Path], *, on_bad_line: Callable[[BadLine], None] | None = None) -> list[Item]:
    """Items from journal files (``.jsonl``), payload files (``.json``, one body each) and folders of them.

    Raises ``ValueError`` naming the file when a path does not exist or a payload file is not JSON. A journal
    line that is not a record is passed to ``on_bad_line`` and skipped (one torn line must not keep the rest of
    a journal from being replayed); without ``on_bad_line`` it raises :class:`BadLine`, a ``ValueError``.
    """
    items: list[Item] = []
    for path in (Path(p) for p in paths):
        if not path.exists():
            raise ValueError(f"{path} does not exist")
        for file in _files(path):
            if file.suffix == ".jsonl":
                items.extend(
                    Item(record["_source"], record["body"], record.get("receivedAt"), record.get("headers") or {})
                    for record in read_records(file, on_bad_line=on_bad_line)
                    if isinstance(record.get("body"), str)
                )
                continue
            try:
                text = file.read_text(encoding="utf-8")
                json.loads(text)
            except (UnicodeDecodeError, ValueError) as exc:
                raise ValueError(f"{file} is not a JSON payload: {exc}") from None
            items.append(Item(str(file), text))
    return items


def only_call(items: Iterable[Item], call_id: str) -> list[Item]:
    """The items about ``call_id`` (any spelling), each body cut down to that call's notifications."""
    wanted = canonical_id(call_id)
    kept: list[Item] = []
    for item in items:
        notifications = _notifications(item.body)
        mine = [n for n in notifications if _call_id(n) == wanted]
        if not mine:
            continue
        if len(mine) == len(notifications):
            kept.append(item)
        else:
            doc = json.loads(item.body)
            kept.append(replace(item, body=json.dumps({**doc, "value": mine})))
    return kept


def replay(
    items: Iterable[Item],
    target: Target,
    *,
    token: Callable[[], str] | None = None,
    keep_timing: bool = False,
    speed: float = 1.0,
    report: Callable[[Result], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Result]:
    """Post each item in order; return the results (and pass each to ``report`` as it comes).

    ``token`` signs each request (a fresh bearer token per call); ``keep_timing`` reproduces the gaps between
    the items' ``receivedAt``, divided by ``speed``. The journal's correlation headers are sent again.
    """
    results: list[Result] = []
    previous: float | None = None
    for item in items:
        moment = epoch(item.received_at)
        if keep_timing and previous is not None and moment is not None and moment > previous:
            sleep((moment - previous) / speed)
        previous = moment if moment is not None else previous
        headers = {"Content-Type": "application/json", **item.headers}
        if token is not None:
            headers["Authorization"] = f"Bearer {token()}"
        try:
            answer = target.post(item.body, headers)
            result = Result(item, answer.status_code, answer=answer)
        except Unreachable as exc:
            result = Result(item, 0, str(exc))
        results.append(result)
        if report is not None:
            report(result)
    return results
