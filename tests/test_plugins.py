"""Handlers written with the decorators, and plugins loaded from settings and entry points."""

from __future__ import annotations

import importlib
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from webhook import ConfigError, create_app, on
from webhook.builders import call_ended, call_notification, envelope, incoming_call, new_id, operation_notification
from webhook.cli import main
from webhook.http import EXTENSION

from .support import app_without_autoload


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def write_module(folder: Path, source: str, name: str | None = None) -> str:
    """A plugin module with a unique name (modules are imported once per process)."""
    name = name or f"plugin_{uuid.uuid4().hex[:10]}"
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return name


def test_decorators_filter_and_pass_only_the_arguments_a_handler_names(store_url: str) -> None:
    heard: list[Any] = []

    @on.call_state("established", "hold")
    def up(call: Any, previous: Any) -> None:
        heard.append(("up", call.state, previous))

    @on.call_state
    def any_state(sender: str) -> None:
        heard.append(("any", sender))

    @on.operation("playPrompt")
    def prompt(succeeded: bool, claims: Any, **kwargs: Any) -> None:
        heard.append(("prompt", succeeded, claims.tenant_id, "call" in kwargs))

    client = app_without_autoload(store_url).test_client()
    call_id = new_id()
    for body in (
        incoming_call(call_id),
        call_notification(call_id, "established"),
        operation_notification(call_id, new_id(), "record"),
        operation_notification(call_id, new_id()),
        call_ended(call_id),
    ):
        assert client.post("/api/calls", json=envelope(body)).status_code == 202
    # Receivers of one signal run in no guaranteed order: compare as sets of what was heard.
    assert sorted(map(repr, heard)) == sorted(
        map(
            repr,
            [
                ("any", "incoming"),
                ("up", "established", "incoming"),
                ("any", "established"),
                ("prompt", True, None, True),
                ("any", "terminated"),
            ],
        )
    )


def test_plugins_load_in_the_order_given_and_their_setup_sees_the_app(plugin_dir: Path, store_url: str) -> None:
    log = plugin_dir / "log.txt"
    source = f"""
        from pathlib import Path
        Path({str(log)!r}).open("a").write("import {{name}}\\n")
        def setup(app):
            Path({str(log)!r}).open("a").write("setup {{name}} " + str(app.config.get("GREETING")) + "\\n")
    """
    first = write_module(plugin_dir, source.replace("{name}", "first"))
    holder = write_module(
        plugin_dir,
        """
        class Plugin:
            def setup(self, app):
                app.config["SEEN_BY_OBJECT"] = True
        plugin = Plugin()
    """,
    )
    second = write_module(plugin_dir, source.replace("{name}", "second"))
    app = app_without_autoload(store_url, PLUGINS=f"{second}, {holder}:plugin,{first}", GREETING="hi")
    assert log.read_text().splitlines() == ["import second", "setup second hi", "import first", "setup first hi"]
    assert app.config["SEEN_BY_OBJECT"] is True
    assert [p.name for p in app.extensions[EXTENSION].plugins] == [second, f"{holder}:plugin", first]


def test_plugin_handlers_fire_and_are_listed(
    plugin_dir: Path, store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = write_module(
        plugin_dir,
        """
        from webhook import on
        ENDED = []
        @on.call_state("terminated")
        def ended(call, end_reason):
            ENDED.append((call.id, end_reason))
        @on.tone(deferred=True)
        def pressed(tone):
            pass
    """,
    )
    app = app_without_autoload(store_url, PLUGINS=name)
    call_id = new_id()
    app.test_client().post("/api/calls", json=envelope(call_ended(call_id)))
    assert [(call_id, "The call ended.")] == importlib.import_module(name).ENDED
    monkeypatch.setenv("WEBHOOK_AUTH", "disabled")
    monkeypatch.setenv("WEBHOOK_STORE_URL", store_url)
    monkeypatch.setenv("WEBHOOK_PLUGINS", name)
    monkeypatch.setenv("WEBHOOK_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert f"{name}  [PLUGINS; not from a distribution]" in out
    assert f"{name}.ended on call_state_changed terminated" in out
    assert f"{name}.pressed on tone_received (deferred)" in out


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import no_such_module_anywhere\n", "could not be loaded: ModuleNotFoundError"),
        ("raise RuntimeError('boom at import')\n", "could not be loaded: RuntimeError: boom at import"),
        ("def setup(app):\n    raise ValueError('bad config')\n", "failed in setup(app): ValueError: bad config"),
    ],
)
def test_a_broken_plugin_stops_start_up_naming_it(plugin_dir: Path, store_url: str, source: str, expected: str) -> None:
    name = write_module(plugin_dir, source)
    with pytest.raises(ConfigError) as info:
        app_without_autoload(store_url, PLUGINS=name)
    assert f"plugin {name!r}" in info.value.message
    assert expected in info.value.message


def test_a_missing_plugin_stops_start_up(store_url: str) -> None:
    with pytest.raises(ConfigError, match="plugin 'not_installed_plugin'"):
        app_without_autoload(store_url, PLUGINS="not_installed_plugin")


def fake_distribution(folder: Path, module: str, entry: str) -> None:
    """An installed distribution, as importlib.metadata sees one, offering ``module`` under our entry point."""
    info = folder / "fake_bot_plugin-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-bot-plugin\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[comms_webhook.plugins]\n{entry} = {module}\n")
    (info / "top_level.txt").write_text(module + "\n")


def test_entry_point_plugins_are_discovered_unless_autoload_is_off(plugin_dir: Path, store_url: str) -> None:
    name = write_module(plugin_dir, "LOADED = True\n")
    fake_distribution(plugin_dir, name, "fake_entry")
    app = create_app({"AUTH": "disabled", "STORE_URL": store_url})
    (plugin,) = [p for p in app.extensions[EXTENSION].plugins if p.name == "fake_entry"]
    assert (plugin.source, plugin.distribution, plugin.version) == ("entry point", "fake-bot-plugin", "1.2.3")
    off = create_app({"AUTH": "disabled", "STORE_URL": store_url, "DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert [p.name for p in off.extensions[EXTENSION].plugins] == []


def test_a_broken_entry_point_plugin_stops_start_up(plugin_dir: Path, store_url: str) -> None:
    name = write_module(plugin_dir, "raise ImportError('missing dependency')\n")
    fake_distribution(plugin_dir, name, "broken_entry")
    with pytest.raises(ConfigError, match="plugin 'broken_entry' \\(entry point\\) could not be loaded"):
        create_app({"AUTH": "disabled", "STORE_URL": store_url})


def test_a_handler_asking_for_what_its_signal_never_sends_is_refused_when_registered(
    plugin_dir: Path, store_url: str
) -> None:
    with pytest.raises(
        TypeError,
        match=r"takes 'caller'.*call_state_changed never sends; it sends sender, claims, "
        r"call, previous, notification, end_reason",
    ):

        @on.call_state("established")
        def greet(call: Any, caller: Any) -> None: ...

    @on.tone(deferred=True)
    def fine(tone: Any, sequence_id: Any, claims: Any, extra: Any = None, **rest: Any) -> None: ...

    name = write_module(
        plugin_dir,
        """
        from webhook import on
        @on.operation
        def done(call, result):
            pass
    """,
    )
    with pytest.raises(ConfigError, match=rf"plugin '{name}'.*takes 'result', which operation_completed never sends"):
        app_without_autoload(store_url, PLUGINS=name)
