"""Faults reproduced for real against a real gunicorn: a worker restarted while the store is locked or its disk
is full boots, answers 503 with Retry-After, and recovers by itself; slow and lying clients do not keep Graph
waiting."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook.builders import envelope, incoming_call, new_id

from .support import SHIPPED_GUNICORN, Gunicorn

pytestmark = pytest.mark.slow


def workers_of(master: int) -> set[int]:
    """The pids of the master's children (gunicorn's workers), read from /proc."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                children.add(int(entry.name))
    return children


def post(url: str, call_id: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url + "/api/calls",
        data=json.dumps(envelope(incoming_call(call_id))).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def restart_a_worker(server: Gunicorn) -> int:
    """SIGKILL one worker and wait for gunicorn to boot its replacement; return the new worker's pid."""
    before = workers_of(server.process.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = workers_of(server.process.pid)
        new = now - before
        if new and victim not in now:
            return new.pop()
        assert server.process.poll() is None, server.log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"no new worker: {server.log.read_text()}")


def serve(tmp_path: Path, store: Path) -> Gunicorn:
    env = {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": f"sqlite:///{store}",
        "WEBHOOK_STORE_TIMEOUT_SECONDS": "0.3",
        "WEBHOOK_JOURNAL_DIR": str(tmp_path / "journal"),
        "WEBHOOK_ADMIN_TOKEN": "t",
    }
    server = Gunicorn("webhook:create_app()", workers=2, env=env, log=tmp_path / "gunicorn.log")
    server.wait_ready("/healthz", {})
    return server


def test_a_worker_restarted_while_another_process_holds_the_write_lock_boots_and_recovers(tmp_path: Path) -> None:
    store = tmp_path / "calls.sqlite3"
    server = serve(tmp_path, store)
    try:
        assert post(server.url, new_id())[0] == 202
        blocker = sqlite3.connect(store, isolation_level=None, timeout=10)
        blocker.execute("BEGIN IMMEDIATE")  # a backup, a migration, a stuck process: held past the timeout
        try:
            restart_a_worker(server)
            restart_a_worker(server)  # both workers are now ones booted under the lock
            time.sleep(1)
            assert server.process.poll() is None, "the gunicorn master shut down: " + server.log.read_text()
            status, headers, body = post(server.url, new_id())
            assert (status, headers.get("Retry-After")) == (503, "5")
            assert json.loads(body)["details"] == {"reason": "busy"}
            assert get_status(server.url + "/readyz") == 503
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        call_id = new_id()
        assert post(server.url, call_id)[0] == 202  # recovered by itself
        assert get_status(server.url + "/readyz") == 200
    finally:
        server.stop()
    assert "Worker failed to boot" not in server.log.read_text()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of the test's own (needs the right to mount, as root in CI's container)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_worker_restarted_while_the_disk_is_full_boots_and_recovers_when_space_is_back(
    tmp_path: Path, small_disk: Path
) -> None:
    store = small_disk / "calls.sqlite3"
    server = serve(tmp_path, store)
    filler = small_disk / "filler"
    try:
        assert post(server.url, new_id())[0] == 202
        # Fill the disk to the last block, unbuffered: a buffered file keeps what a partial write left over and
        # raises again when it is closed.
        with filler.open("wb", buffering=0) as file:
            try:
                while True:
                    file.write(b"\0" * 65536)
            except OSError:
                pass
        restart_a_worker(server)
        restart_a_worker(server)
        time.sleep(1)
        assert server.process.poll() is None, "the gunicorn master shut down: " + server.log.read_text()
        refused = [post(server.url, new_id()) for _ in range(40)]  # until the WAL's free space is used up
        assert any(status == 503 for status, _, _ in refused)
        assert {status for status, _, _ in refused} <= {202, 503}
        for status, headers, body in refused:
            if status == 503:
                assert headers.get("Retry-After") == "5"
                assert json.loads(body)["details"] == {"reason": "disk_full"}
        assert get_status(server.url + "/readyz") == 503
        filler.unlink()
        assert post(server.url, new_id())[0] == 202
        assert get_status(server.url + "/readyz") == 200
    finally:
        server.stop()
    assert "Worker failed to boot" not in server.log.read_text()


def _trickle(port: int, stop: threading.Event) -> None:
    """A slowloris: a request's headers, one byte a second, never finished."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /api/calls HTTP/1.1\r\nHost: x\r\n")
        while not stop.wait(1.0):
            try:
                sock.sendall(b"X")
            except OSError:
                return


def test_sixteen_slow_sockets_and_a_body_that_never_comes_do_not_keep_graph_waiting(tmp_path: Path) -> None:
    env = {
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": f"sqlite:///{tmp_path / 'calls.sqlite3'}",
        "WEBHOOK_JOURNAL_DIR": str(tmp_path / "journal"),
        "WEBHOOK_BODY_TIMEOUT_SECONDS": "2",
    }
    # The shipped settings exactly, as the Procfile, the Dockerfile and the systemd unit run them.
    server = Gunicorn(
        "webhook:create_app()",
        workers=None,
        threads=None,
        env=env,
        log=tmp_path / "gunicorn.log",
        config=SHIPPED_GUNICORN,
    )
    server.wait_ready("/healthz", {})
    stop = threading.Event()
    tricklers = [threading.Thread(target=_trickle, args=(server.port, stop)) for _ in range(16)]
    liar = socket.create_connection(("127.0.0.1", server.port))
    try:
        for thread in tricklers:
            thread.start()
        liar.sendall(
            b"POST /api/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
            + b'{"value": ['
        )
        time.sleep(1.5)  # every slow socket is in the middle of its request now
        for _ in range(5):
            started = time.monotonic()
            status, _, _ = post(server.url, new_id())
            assert status == 202
            assert time.monotonic() - started < 1.0
        liar.settimeout(10)
        answer = b""
        while b"}" not in answer:  # the body stalled longer than WEBHOOK_BODY_TIMEOUT_SECONDS: 408, then JSON
            chunk = liar.recv(4096)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
    finally:
        stop.set()
        liar.close()
        for thread in tricklers:
            thread.join()
        server.stop()
