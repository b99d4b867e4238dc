"""The README's quick start, run as written in fresh virtual environments on a copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from .support import ROOT, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("COMMS_WEBHOOK_README_TEST") == "1", reason="already inside the README test"),
]


def quick_start() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def copy_of_repository(target: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("WEBHOOK_", "VIRTUAL_ENV", "PYTHONPATH", "COMMS_WEBHOOK_REQUIRE", "COMMS_WEBHOOK_PAYLOADS")
        )
    }


def test_the_readme_has_exactly_two_commands_then_the_curls() -> None:
    serve, tests, curls = quick_start()
    assert len(serve.strip().splitlines()) == 1 and len(tests.strip().splitlines()) == 1
    assert "comms-webhook serve" in serve and "pytest" in tests and curls.count("curl") == 2


def test_the_serve_command_and_the_curls(tmp_path: Path) -> None:
    serve, _, curls = quick_start()
    port = free_port()
    repo = copy_of_repository(tmp_path / "serve")
    process = subprocess.Popen(
        ["bash", "-c", serve.replace("127.0.0.1:8000", f"127.0.0.1:{port}")],
        cwd=repo,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.5)
        result = subprocess.run(
            ["bash", "-c", curls.replace("127.0.0.1:8000", f"127.0.0.1:{port}")],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        assert "HTTP/1.1 202" in result.stdout
        assert '"state":"incoming"' in result.stdout.replace(" ", "")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    assert "NOT authenticated" in output  # switched off visibly


def test_the_test_command(tmp_path: Path) -> None:
    _, tests, _ = quick_start()
    repo = copy_of_repository(tmp_path / "tests")
    env = {**clean_env(), "COMMS_WEBHOOK_README_TEST": "1", "PYTEST_ADDOPTS": "-m 'not slow' -q -p no:cacheprovider"}
    result = subprocess.run(["bash", "-c", tests], cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
    assert "skipped" not in result.stdout  # a fresh clone runs green, nothing skipped
    assert "conformance tests deselected: the shared payloads are not at" in result.stdout
