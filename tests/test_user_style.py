"""A bot developer's test: nothing imported from comms-webhook, only its pytest fixtures."""

import pytest


def test_my_bot_greets_each_answered_call_once(webhook_on, replay, notifications):
    greeted = []

    @webhook_on.call_state("established")
    def greet(call, claims):
        greeted.append((call.id, claims.tenant_id))

    result = replay(notifications.scenario("answered_and_hung_up"))

    assert result.statuses == [202] * 5
    call = result.call()
    assert call.state == "terminated"
    assert greeted == [(call.id, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")]


def test_a_forged_token_gets_nowhere(webhook_client, graph_token, notifications):
    body = notifications.envelope(notifications.incoming_call(notifications.new_id()))
    forged = graph_token(aud="someone-else")
    response = webhook_client.post("/api/calls", json=body, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


@pytest.mark.parametrize("name", ["rejected", "transfer_failed"])
def test_every_scenario_replays(replay, notifications, name):
    assert set(replay(notifications.scenario(name)).statuses) == {202}


def test_the_notifications_fixture_offers_the_builders_and_the_scenarios_only(notifications):
    offered = {name for name in vars(notifications) if not name.startswith("_")}
    assert {"envelope", "incoming_call", "call_notification", "roster_notification", "scenario"} <= offered
    assert not offered & {"Any", "JSON", "GRAPH", "uuid"}  # what the builders import is not theirs to offer


def test_the_fixtures_come_from_the_installed_plugin_alone(tmp_path):
    """Run this very module in a folder of its own, where no conftest of ours exists: only the pytest11
    entry point of the installed distribution provides the fixtures."""
    import os
    import pathlib
    import subprocess
    import sys

    source = pathlib.Path(__file__).read_text().split("\n\n\ndef test_the_fixtures_come_from")[0]
    (tmp_path / "test_my_bot.py").write_text(source + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_my_bot.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={name: value for name, value in os.environ.items() if name != "PYTEST_ADDOPTS"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_a_deferred_handler_has_run_when_replay_waits(webhook_on, replay, notifications):
    import threading

    release, heard = threading.Event(), []

    @webhook_on.call_state("incoming", deferred=True)
    def slow(call):
        release.wait(5)
        heard.append(call.id)

    call_id = notifications.new_id()
    threading.Timer(0.2, release.set).start()
    result = replay(notifications.incoming_call(call_id), wait=True)  # a bare notification: wrapped for us
    assert result.statuses == [202]
    assert heard == [call_id]


def test_the_caller_and_the_callee_are_plain_fields(replay, notifications):
    call = replay(notifications.scenario("answered_and_hung_up")).call()
    assert call.caller is not None and call.caller.kind in ("user", "phone", "application")
    assert call.caller.display_name
    assert call.callee is not None and call.callee.kind == "application"
