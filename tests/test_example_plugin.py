"""The example plugin, installed with pip into a fresh virtual environment, found by its entry point."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

from .support import ROOT

pytestmark = pytest.mark.slow

REPLAY = textwrap.dedent(
    """
    import json, sys
    from webhook import create_app
    from webhook.scenarios import answered_and_hung_up, outgoing

    app = create_app({"AUTH": "disabled", "STORE_URL": sys.argv[1], "CALL_SUMMARY_PATH": sys.argv[2]})
    client = app.test_client()
    ids = []
    for scenario in (answered_and_hung_up("5a7b4c00-0000-4000-8000-000000000001"),
                     outgoing("5a7b4c00-0000-4000-8000-000000000002")):
        ids.append(scenario.call_id)
        for body in scenario.bodies:
            assert client.post("/api/calls", json=body).status_code == 202
    print(json.dumps(ids))
    """
)


def test_example_plugin_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", str(ROOT), str(ROOT / "examples" / "call-summary")]
    subprocess.run(install, check=True, capture_output=True, timeout=600)
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "PYTHONPATH"))}

    summaries = tmp_path / "summaries.jsonl"
    store = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    result = subprocess.run(
        [str(python), "-c", REPLAY, store, str(summaries)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env,
        timeout=120,
    )
    ids = json.loads(result.stdout)
    lines = [json.loads(line) for line in summaries.read_text().splitlines()]
    assert [line["callId"] for line in lines] == ids
    assert lines[0]["endReason"] == "The conversation ended."
    assert lines[0]["states"] == ["incoming", "establishing", "established", "terminating", "terminated"]
    assert lines[1]["endReason"] == "The call was ended by the bot."
    assert lines[1]["direction"] == "outgoing"

    listing = subprocess.run(
        [str(env_dir / "bin" / "comms-webhook"), "plugins"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**clean_env, "WEBHOOK_AUTH": "disabled", "WEBHOOK_STORE_URL": store},
        timeout=120,
    ).stdout
    assert "call_summary  [entry point; comms-call-summary 0.1.0]" in listing
    assert "comms_call_summary.summarize on call_state_changed terminated" in listing
