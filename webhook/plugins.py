"""Plugins: the modules that register a bot's handlers (:mod:`webhook.handlers`), loaded at start-up.

A plugin is a module (or ``module:object``) that registers handlers when imported and may expose
``setup(app)``. Plugins come from the ``PLUGINS`` setting (in that order), then from the entry-point group
``comms_webhook.plugins`` of installed distributions (unless ``DISABLE_PLUGIN_AUTOLOAD``). A plugin that cannot
be loaded stops start-up: running without a handler silently is worse than not starting.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask

from .errors import ConfigError
from .handlers import HANDLERS, Handler, registering_for

ENTRY_POINT_GROUP = "comms_webhook.plugins"


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin as ``comms-webhook plugins`` shows it."""

    name: str
    source: str  # "PLUGINS" or "entry point"
    distribution: str | None
    version: str | None
    handlers: tuple[Handler, ...]


def _import_target(spec: str) -> Any:
    """Import ``module`` or ``module:object`` and return the module or the object."""
    module_name, _, attribute = spec.partition(":")
    target: Any = importlib.import_module(module_name.strip())
    for part in filter(None, attribute.strip().split(".")):
        target = getattr(target, part)
    return target


def _distribution_of(module_name: str) -> tuple[str | None, str | None]:
    top = module_name.split(".")[0]
    names = importlib.metadata.packages_distributions().get(top) or []
    if not names:
        return None, None
    try:
        return names[0], importlib.metadata.version(names[0])
    except importlib.metadata.PackageNotFoundError:
        return names[0], None


def _load_one(app: Flask, name: str, spec: str, source: str, loader: Callable[[], Any]) -> LoadedPlugin:
    before = len(HANDLERS)
    try:
        with registering_for(name):
            target = loader()
    except Exception as exc:
        raise ConfigError(f"plugin {name!r} ({source}) could not be loaded: {type(exc).__name__}: {exc}") from exc
    setup = getattr(target, "setup", None)
    if callable(setup):
        try:
            setup(app)
        except Exception as exc:
            raise ConfigError(f"plugin {name!r} failed in setup(app): {type(exc).__name__}: {exc}") from exc
    module_name = spec.partition(":")[0].strip()
    # Handlers registered by this import, or earlier by the same module (a module is imported only once).
    handlers = tuple(
        h
        for index, h in enumerate(HANDLERS)
        if index >= before
        or h.plugin == name
        or h.func.__module__ == module_name
        or h.func.__module__.startswith(module_name + ".")
    )
    distribution, version = _distribution_of(module_name)
    return LoadedPlugin(name, source, distribution, version, handlers)


def load_plugins(app: Flask, names: Iterable[str], *, autoload: bool) -> list[LoadedPlugin]:
    """Load the plugins ``names`` in order, then (with ``autoload``) those installed under the entry-point group.

    Raises :class:`ConfigError` naming the plugin when one cannot be imported or its ``setup`` raises.
    """
    loaded: list[LoadedPlugin] = []
    for spec in names:
        loaded.append(_load_one(app, spec, spec, "PLUGINS", functools.partial(_import_target, spec)))
    if autoload:
        seen = {plugin.name for plugin in loaded}
        for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if entry.name in seen or entry.value in seen:
                continue
            plugin = _load_one(app, entry.name, entry.value, "entry point", entry.load)
            if entry.dist is not None:
                plugin = LoadedPlugin(plugin.name, plugin.source, entry.dist.name, entry.dist.version, plugin.handlers)
            loaded.append(plugin)
    return loaded
