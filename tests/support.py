"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prometheus_client
from werkzeug.serving import make_server

from webhook.events import Event
from webhook.model import Call
from webhook.parse import load_notifications
from webhook.state import decide

ROOT = Path(__file__).resolve().parent.parent
#: gunicorn's settings as shipped: what the Procfile, the Dockerfile and the systemd unit run.
SHIPPED_GUNICORN = ROOT / "deploy" / "gunicorn.conf.py"
#: Microsoft's and a third party's payloads live beside the repository and are never copied into it.
PAYLOADS = Path(os.environ.get("COMMS_WEBHOOK_PAYLOADS", ROOT.parent / "shared" / "payloads"))
DOCS = PAYLOADS / "graph-docs"
CAPTURED = PAYLOADS / "captured" / "graph-calling-bots"
NO_PAYLOADS = f"the shared payloads are not at {PAYLOADS} (set COMMS_WEBHOOK_PAYLOADS to their folder)"


def docs_files() -> list[Path]:
    return sorted(DOCS.glob("*.json")) if DOCS.is_dir() else []


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def captured(folder: str, *names: str) -> list[dict[str, Any]]:
    """The bodies of one captured call; in name order, or in the order ``names`` gives."""
    files = [CAPTURED / folder / name for name in names] if names else sorted((CAPTURED / folder).glob("*.json"))
    return [load_json(path) for path in files]


def app_without_autoload(store_url: str, **settings: Any) -> Any:
    """An app on ``store_url`` with auth off and only the plugins a test names (no installed ones)."""
    from webhook import create_app

    return create_app({"AUTH": "disabled", "STORE_URL": store_url, "DISABLE_PLUGIN_AUTOLOAD": "1", **settings})


def replay_pure(bodies: list[dict[str, Any]], start: Call | None = None) -> tuple[Call | None, list[Event]]:
    """Run bodies through the pure state machine only; return the last call touched and every event."""
    call, events = start, []
    for index, body in enumerate(bodies):
        for notification in load_notifications(body):
            decision = decide(call, notification, f"2026-01-01T00:00:{index:02d}.000Z")
            if decision.call is not None:
                call = decision.call
            events.extend(decision.events)
    return call, events


def history_states(call: dict[str, Any] | Call) -> list[str]:
    history = call.history if isinstance(call, Call) else call["history"]
    return [step["to"] for step in history]


def is_subsequence(items: list[str], of: list[str] | tuple[str, ...]) -> bool:
    remaining = iter(of)
    return all(any(item == candidate for candidate in remaining) for item in items)


def metric_value(name: str, **labels: str) -> float:
    """The current value of one of this process's metrics (``comms_webhook_`` omitted from ``name``); 0 before
    its first count. Metrics are process-wide: tests compare the value before and after what they do."""
    value = prometheus_client.REGISTRY.get_sample_value(f"comms_webhook_{name}", labels)
    return 0.0 if value is None else value


def until(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """What ``condition()`` returns once it is true, asked every 20 ms; AssertionError naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what}")


#: The app id of the receivers :func:`verifying_client` builds (the audience their tokens must carry).
VERIFIED_APP_ID = "6f1f5c00-1111-2222-3333-444455556666"


def verifying_client(keys: Any, tmp_path: Path, admin_token: str, **settings: Any) -> Any:
    """The test client of a receiver that verifies Graph's tokens against ``keys`` (a LocalGraphKeys) for
    :data:`VERIFIED_APP_ID`, its store and journal in ``tmp_path``."""
    from webhook import create_app

    app = create_app(
        {
            "APP_ID": VERIFIED_APP_ID,
            "OPENID_CONFIG_URL": keys.config_url,
            "STORE_URL": f"sqlite:///{tmp_path}/calls.sqlite3",
            "ADMIN_TOKEN": admin_token,
            "JOURNAL_DIR": str(tmp_path / "journal"),
            **settings,
        }
    )
    return app.test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """A real gunicorn master serving ``app`` on 127.0.0.1, started and stopped by the test."""

    def __init__(
        self,
        app: str,
        *,
        workers: int | None,
        env: dict[str, str],
        log: Path,
        threads: int | None = 1,
        config: Path | None = None,
        port: int | None = None,
    ) -> None:
        """``workers`` and ``threads`` of None leave them to ``config`` (the shipped settings, say); ``port``
        chosen beforehand when the app must know its own URL."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            *(["--workers", str(workers)] if workers is not None else []),
            *(["--threads", str(threads)] if threads is not None else []),
            "--chdir",
            str(ROOT),
            *(["--config", str(config)] if config is not None else []),
            app,
        ]
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def wait_ready(self, path: str, headers: dict[str, str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text()}")
            try:
                request = urllib.request.Request(self.url + path, headers=headers)
                with urllib.request.urlopen(request, timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer in {timeout}s: {self.log.read_text()}")

    def get_json(self, path: str, headers: dict[str, str]) -> Any:
        request = urllib.request.Request(self.url + path, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


class RedisServer:
    """A redis-server of the test's own on 127.0.0.1 (a free port), which the test may stop and restart."""

    def __init__(self, folder: Path, *, persistent: bool = False, options: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.persistent = persistent
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.folder),
            *persistence,
            *self.options,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not redis_answers(self.url):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def store_of(settings: dict[str, str], **options: Any) -> Any:
    """The store these settings (``any_store_settings``) name, opened as the receiver opens it."""
    from webhook.store import open_store

    return open_store(
        settings["STORE_URL"],
        prefix=settings.get("REDIS_PREFIX", "comms-webhook"),
        redis_cluster=settings.get("REDIS_CLUSTER") == "1",
        **options,
    )


def free_cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is a port too, and free."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            port = random.randint(20000, 55000)
        with socket.socket() as first, socket.socket() as bus:
            try:
                first.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisClusterServers:
    """A Redis Cluster of ``masters`` redis-server processes of the test's own on 127.0.0.1 (no replicas),
    created with ``redis-cli --cluster create`` as an operator would."""

    def __init__(self, folder: Path, masters: int = 3) -> None:
        self.ports = [free_cluster_port() for _ in range(masters)]
        self.url = f"redis://127.0.0.1:{self.ports[0]}"
        self.folder = folder
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> RedisClusterServers:
        for port in self.ports:
            home = self.folder / str(port)
            home.mkdir(parents=True, exist_ok=True)
            command = [
                "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", str(home / "nodes.conf"), "--dir", str(home), "--save", "",
                "--appendonly", "no",
            ]  # fmt: skip
            self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.ports:
            deadline = time.monotonic() + 10
            while not redis_answers(f"redis://127.0.0.1:{port}/0"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {port} did not start")
                time.sleep(0.05)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 20
        while not all(self._ok(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        return self

    @staticmethod
    def _ok(port: int) -> bool:
        import redis

        try:
            info = redis.Redis(port=port, socket_timeout=1).execute_command("CLUSTER INFO")
        except (redis.RedisError, OSError):
            return False
        return isinstance(info, dict) and info.get("cluster_state") == "ok"

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes = []


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).with_name("comms-webhook")
    return subprocess.run(
        [str(script), *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60
    )


class Served:
    """A receiver on 127.0.0.1 (werkzeug, threaded), as Graph reaches it."""

    def __init__(self, app: Any, admin_token: str, port: int = 0) -> None:
        self.app, self.admin = app, {"Authorization": f"Bearer {admin_token}"}
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/calls"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def call(self, call_id: str) -> dict[str, Any]:
        return self.app.test_client().get(f"/api/calls/{call_id}", headers=self.admin).get_json()

    def stop(self) -> None:
        self.server.shutdown()


def serve_bot(fake: Any, tmp_path: Path, admin_token: str, **settings: Any) -> Served:
    """A receiver for a fake Graph: trusting its keys, acting through it, served on 127.0.0.1 as its callback
    (the port is chosen first, so that the receiver's WEBHOOK_CALLBACK_URL names it)."""
    from webhook import create_app

    port = free_port()
    fake.callback_url = f"http://127.0.0.1:{port}/api/calls"
    app = create_app(
        {
            **fake.settings(),
            "STORE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}",
            "ADMIN_TOKEN": admin_token,
            "OUTBOX_SWEEP_SECONDS": 0,
            **settings,
        }
    )
    return Served(app, admin_token, port)
