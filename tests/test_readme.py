"""The README's quick start, run as written in fresh virtual environments on a copy of the repository."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from webhook.builders import new_id

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
        with contextlib.suppress(ProcessLookupError):  # it exited by itself: its output says why
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


KINDS = ("quick-start", "module", "pytest", "shell", "ci")


def marked_blocks() -> list[tuple[str, str, str]]:
    """(how it is tested, language, code) of every code block, from the comment before it."""
    text = (ROOT / "README.md").read_text()
    return re.findall(r"<!-- readme-test: (.*?) -->\n```(\w+)\n(.*?)```", text, flags=re.S)


def test_every_code_block_says_how_it_is_tested() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = marked_blocks()
    assert len(blocks) == len(re.findall(r"^```\w+$", text, flags=re.M))
    assert {how.split()[0].rstrip(",") for how, _, _ in blocks} <= set(KINDS)


def cli_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    return {
        **clean_env(),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "WEBHOOK_DATA_DIR": str(tmp_path / "instance"),
        **settings,
    }


def test_the_python_blocks_run_as_printed(tmp_path: Path) -> None:
    modules, tests = [], []
    for index, (how, language, code) in enumerate(marked_blocks()):
        assert language in ("python", "sh")
        if how.startswith("module "):
            name = how.split()[1]
            (tmp_path / f"{name}.py").write_text(code)
            modules.append(name)
        elif how == "pytest":
            (tmp_path / f"test_readme_{index}.py").write_text(code)
            tests.append(f"test_readme_{index}.py")
    assert {"mybot", "billing", "greeter"} <= set(modules) and len(tests) >= 2
    env = cli_env(tmp_path, WEBHOOK_AUTH="disabled", WEBHOOK_PLUGINS=",".join(modules))
    run = subprocess.run(
        ["comms-webhook", "simulate", "--in-process", "--plugins", "--calls", "8", "--store", "sqlite:///sim.db"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "incoming call" in run.stdout and "audio is up" in run.stdout and "ended:" in run.stdout  # mybot
    assert "is established (was" in run.stdout  # greeter
    with sqlite3.connect(tmp_path / "billing.sqlite3") as ledger:  # billing: once per ended call
        (billed,) = ledger.execute("SELECT COUNT(*) FROM billed").fetchone()
    assert billed == run.stdout.count("ended:")
    checked = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(tests)} passed" in checked.stdout


def test_the_journal_and_replay_block_runs_as_printed(tmp_path: Path) -> None:
    ((_, _, code),) = [block for block in marked_blocks() if block[0].startswith("shell")]
    # What the block's comment assumes: the receiver ran here and journaled a few calls in ./instance.
    from webhook import create_app
    from webhook.scenarios import SCENARIOS

    data = tmp_path / "instance"  # the default data folder, here (conftest points journals elsewhere)
    app = create_app({"AUTH": "disabled", "DATA_DIR": str(data), "JOURNAL_DIR": str(data / "journal")})
    posted = 0
    for name in ("answered_and_hung_up", "transferred"):
        for body in SCENARIOS[name](new_id()).bodies:
            assert app.test_client().post("/api/calls", json=body).status_code == 202
            posted += 1
    env = {k: v for k, v in cli_env(tmp_path).items() if k != "WEBHOOK_DATA_DIR"}
    done = subprocess.run(
        ["bash", "-e", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "200/200 calls as expected" in done.stdout
    # Rebuilt, then replayed through token checks: every journaled request, both times.
    assert done.stderr.count(f"{posted} request(s), 0 not 2xx") == 2, done.stderr[-2000:]
    rebuilt = sqlite3.connect(tmp_path / "rebuilt.sqlite3")
    assert rebuilt.execute("SELECT COUNT(*) FROM calls").fetchone() == (2,)


def readme_table_names(header: str) -> list[str]:
    """The first column's names (in backticks) of the README table whose header row starts with ``header``."""
    text = (ROOT / "README.md").read_text()
    table = text.split(f"| {header}", 1)[1].split("\n\n", 1)[0]
    return [name for row in table.splitlines()[2:] for name in re.findall(r"`([^`]+)`", row.split("|")[1])]


def test_the_readme_documents_every_signal_with_its_arguments() -> None:
    from webhook.signals import SIGNALS

    text = (ROOT / "README.md").read_text()
    table = text.split("| signal (decorator) |", 1)[1].split("\n\n", 1)[0]
    for each in SIGNALS.values():
        (row,) = [line for line in table.splitlines() if line.startswith(f"| `{each.name}`")]
        assert row.rsplit("|", 2)[1].strip() == ", ".join(f"`{name}`" for name in each.arguments)


def test_the_readme_documents_every_field_of_a_call_and_every_setting() -> None:
    from webhook.model import Call
    from webhook.settings import SETTINGS

    assert set(readme_table_names("field |")) == set(Call(id="x").to_dict())
    documented = [name.removeprefix("WEBHOOK_") for name in readme_table_names("name |")]
    assert sorted(documented) == sorted(setting.name for setting in SETTINGS)


def as_readme_writes_it(value: object) -> tuple[str, ...]:
    """The spellings the README's settings table may give a declared default."""
    if value in ("", ()):
        return ("(none)", "(any)")
    if isinstance(value, bool):
        return ("`1`",) if value else ("`0`",)
    if isinstance(value, float):
        return (f"`{value:.0f}`",) if value.is_integer() else (f"`{value:g}`",)
    if isinstance(value, tuple):
        return (f"`{','.join(value)}`",)
    return (f"`{value}`",)


def test_the_readme_gives_each_setting_its_declared_default() -> None:
    from webhook.settings import SETTINGS

    text = (ROOT / "README.md").read_text()
    table = text.split("| name |", 1)[1].split("\n\n", 1)[0]
    cells = {row.split("|")[1].strip(): row.split("|")[2].strip() for row in table.splitlines()[2:]}
    computed = {"DATA_DIR", "STORE_URL", "JOURNAL_DIR"}  # from the data folder, spelled as paths in the README
    for setting in SETTINGS:
        if setting.name not in computed:
            assert cells[f"`WEBHOOK_{setting.name}`"] in as_readme_writes_it(setting.default), setting.name
