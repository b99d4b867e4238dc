"""The comms-webhook command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from webhook.builders import call_ended, envelope, incoming_call, new_id
from webhook.cli import main
from webhook.testing import LocalGraphKeys

from .support import ROOT, free_port, run_cli


def post_once_up(port: int, call_id: str, tries: int = 100) -> int:
    """POST an incoming call to a receiver that is starting; the status of the first answer (0: none came)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/calls",
        data=json.dumps(envelope(incoming_call(call_id))).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    for _ in range(tries):
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.1)
    return 0


def serve_and_post(
    command: list[str], env: dict[str, str], port: int, call_id: str, cwd: Path | None = None
) -> tuple[int, str]:
    """Start ``comms-webhook serve`` as given, POST one incoming call once it answers, stop it (SIGTERM); return
    the POST's status and everything the server printed."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        status = post_once_up(port, call_id)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    return status, output


@pytest.fixture
def stored_calls(monkeypatch: pytest.MonkeyPatch, store_url: str, poster: Any) -> list[str]:
    monkeypatch.setenv("WEBHOOK_STORE_URL", store_url)
    ids = [new_id(), new_id()]
    poster(envelope(incoming_call(ids[0])))
    poster(envelope(incoming_call(ids[1])))
    poster(envelope(call_ended(ids[1])))
    return ids


def test_calls_lists_the_store_and_filters_by_state(
    stored_calls: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calls"]) == 0
    out = capsys.readouterr().out
    assert stored_calls[0] in out and stored_calls[1] in out
    assert main(["calls", "--state", "terminated", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in listed] == [stored_calls[1]]
    assert listed[0]["endReason"] == "The call ended."


def test_call_prints_one_call_or_fails(stored_calls: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", stored_calls[0].upper()]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "incoming"
    assert main(["call", new_id()]) == 1


def test_a_bad_setting_is_one_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_AUTH", "sometimes")
    assert main(["serve"]) == 2
    assert "WEBHOOK_AUTH must be one of jwt, disabled" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_starts_gunicorn_on_sqlite(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_ADMIN_TOKEN": "t",
        "WEBHOOK_STORE_URL": f"sqlite:///{tmp_path}/calls.sqlite3",
    }
    command = [sys.executable, "-m", "webhook.cli", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    status, output = serve_and_post(command, env, port, new_id())
    assert status == 202
    assert "NOT authenticated" in output
    assert "Booting worker" in output


def test_check_auth_prints_the_keys_or_what_went_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with LocalGraphKeys() as keys:
        monkeypatch.setenv("WEBHOOK_OPENID_CONFIG_URL", keys.config_url)
        assert main(["check-auth"]) == 0
        out = capsys.readouterr().out
        assert f"kid={keys.kid}" in out
        assert "https://api.botframework.com" in out
    assert main(["check-auth"]) == 1
    assert "cannot fetch the signing keys" in capsys.readouterr().err


def test_serve_refuses_a_broken_plugin_before_starting_gunicorn(
    monkeypatch: pytest.MonkeyPatch, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    monkeypatch.setenv("WEBHOOK_STORE_URL", store_url)
    monkeypatch.setenv("WEBHOOK_PLUGINS", "no_such_bot_module")
    assert main(["serve"]) == 2
    assert "plugin 'no_such_bot_module'" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_starts_while_the_store_is_unreachable_and_never_prints_its_password(tmp_path: Path) -> None:
    port, password = free_port(), "s3cret-Redis-pw"
    env = {
        **os.environ,
        "WEBHOOK_AUTH": "disabled",
        "WEBHOOK_STORE_URL": f"redis://:{password}@127.0.0.1:{free_port()}/0",  # nothing listens there
        "WEBHOOK_STORE_TIMEOUT_SECONDS": "0.5",
        "WEBHOOK_JOURNAL_DIR": str(tmp_path / "journal"),
    }
    command = [sys.executable, "-m", "webhook.cli", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    status, output = serve_and_post(command, env, port, new_id())
    assert status == 503  # the workers booted; the store answers once Redis does
    assert f"store redis://:***@127.0.0.1:{env['WEBHOOK_STORE_URL'].rsplit(':', 1)[1]}" in output
    assert password not in output


def test_help_and_version_need_neither_flask_nor_the_app() -> None:
    probe = (
        "import sys\nfrom webhook.cli import main\n"
        "for argv in (['--help'], ['--version'], ['replay', '--help'], ['serve', '-h']):\n"
        "    assert main(argv) == 0, argv\n"
        "heavy = [name for name in ('flask', 'jwt', 'prometheus_client', 'webhook.app') if name in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert "HEAVY []" in done.stdout
    assert "Usage: comms-webhook [OPTIONS] COMMAND" in done.stdout
    assert "comms-webhook 0.1.0" in done.stdout


@pytest.mark.parametrize(
    "command",
    ["serve", "calls", "call", "failures", "plugins", "check-config", "check-auth", "replay", "simulate", "fake-graph"],
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert f"Usage: comms-webhook {command}" in capsys.readouterr().out


def test_commands_that_only_read_need_no_app_id_and_say_nothing_of_auth(
    monkeypatch: pytest.MonkeyPatch, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_STORE_URL", store_url)  # AUTH=jwt and no APP_ID: serving would refuse
    for argv in (["calls"], ["plugins"], ["failures"]):
        assert main(argv) == 0, argv
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    for argv in (["calls"], ["plugins"], ["failures"]):
        assert main(argv) == 0, argv
    assert "NOT authenticated" not in capsys.readouterr().err


def test_a_pipe_closed_early_ends_quietly(tmp_path: Path, store_url: str, poster: Any) -> None:
    for _ in range(300):
        poster(envelope(incoming_call(new_id())))
    script = Path(sys.executable).with_name("comms-webhook")
    shell = f"'{script}' calls --json --limit 300 | head -n 1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        env={**os.environ, "WEBHOOK_STORE_URL": store_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == "[\n"
    assert done.stderr == ""
    assert done.returncode == 0


def test_replay_to_a_dead_port_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = tmp_path / "call.json"
    payload.write_text(json.dumps(envelope(incoming_call(new_id()))))
    url = f"http://127.0.0.1:{free_port()}/api/calls"
    assert main(["replay", str(payload), "--url", url]) == 1
    out = capsys.readouterr().out
    assert out.startswith("ERR") and f"cannot reach {url}" in out and "refused" in out.lower()


def test_replay_needs_exactly_one_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = tmp_path / "call.json"
    payload.write_text(json.dumps(envelope(incoming_call(new_id()))))
    assert main(["replay", str(payload)]) == 2
    assert "exactly one of --url URL and --in-process" in capsys.readouterr().err


def test_a_misspelled_setting_is_pointed_out_with_the_right_name(
    monkeypatch: pytest.MonkeyPatch, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_STORE_URL", store_url)
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    monkeypatch.setenv("WEBHOOK_APPID", "bot")
    assert main(["check-config"]) == 1
    assert (
        "PROBLEM: WEBHOOK_APPID is set but is not a comms-webhook setting, so it is ignored; did you mean "
        "WEBHOOK_APP_ID?" in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("spelling", "journaled"),
    [("on", True), ("TRUE", True), ("1", True), ("yes", True), ("off", False), ("false", False), ("0", False)],
)
def test_switches_take_the_same_spellings_everywhere(
    tmp_path: Path, store_url: str, spelling: str, journaled: bool
) -> None:
    from webhook import create_app

    folder = tmp_path / f"journal-{spelling}"
    app = create_app(
        {
            "AUTH": "disabled",
            "STORE_URL": store_url,
            "JOURNAL": spelling,
            "JOURNAL_DIR": str(folder),
            "JOURNAL_FSYNC": spelling,
        }
    )
    assert app.test_client().post("/api/calls", json=envelope(incoming_call(new_id()))).status_code == 202
    assert bool(list(folder.glob("journal-*.jsonl"))) is journaled


def test_a_wrong_switch_quotes_what_was_typed(store_url: str) -> None:
    from webhook import ConfigError, create_app

    with pytest.raises(ConfigError, match=r"WEBHOOK_JOURNAL must be on or off .* got 'sometimes'"):
        create_app({"AUTH": "disabled", "STORE_URL": store_url, "JOURNAL": "sometimes"})


@pytest.mark.slow
def test_serve_from_the_bots_folder_with_port_web_concurrency_and_a_plugin_beside_it(tmp_path: Path) -> None:
    folder = tmp_path / "my-bot"
    folder.mkdir()
    (folder / "mybot.py").write_text(
        "from pathlib import Path\nfrom webhook import on\n\n"
        "@on.call_state('incoming')\ndef answer(call):\n"
        "    Path('answered.txt').open('a').write(call.id + '\\n')\n"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOK_")}
    env.update(PORT=str(port), WEB_CONCURRENCY="3", WEBHOOK_PLUGINS="mybot", WEBHOOK_AUTH="disabled")
    script = Path(sys.executable).with_name("comms-webhook")
    call_id = new_id()
    status, output = serve_and_post([str(script), "serve"], env, port, call_id, cwd=folder)
    assert status == 202
    assert f"serving on http://0.0.0.0:{port}/api/calls" in output
    assert f"data folder {folder / 'instance'}" in output
    assert output.count("Booting worker") == 3
    assert (folder / "answered.txt").read_text() == call_id + "\n"
    assert (folder / "instance" / "comms-webhook.sqlite3").exists()
    # Every later command finds the same store: from the bot's folder, or from anywhere given the data folder.
    env.pop("PORT")
    here = run_cli("calls", cwd=folder, env=env)
    elsewhere = run_cli("calls", cwd=tmp_path, env={**env, "WEBHOOK_DATA_DIR": str(folder / "instance")})
    for listing in (here, elsewhere):
        assert listing.returncode == 0, listing.stderr
        assert call_id in listing.stdout
