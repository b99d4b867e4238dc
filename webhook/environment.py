"""The environment a receiver starts in: its data folder, and the ``WEBHOOK_*`` variables it reads (as the
strings they are) or does not know (most likely typos, each named with the setting it most likely meant)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

from .setting_types import PREFIX, as_text
from .settings import BY_NAME


def data_dir(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The data folder, absolute: ``DATA_DIR`` of ``config``, else ``WEBHOOK_DATA_DIR``, else ``./instance`` of
    the current directory (never inside the virtual environment, which is rebuilt at will)."""
    environ = os.environ if environ is None else environ
    configured = (config or {}).get("DATA_DIR") or environ.get(f"{PREFIX}DATA_DIR", "").strip()
    return os.path.abspath(as_text("DATA_DIR", configured) if configured else "instance")


def environment_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our settings set in the environment (``WEBHOOK_*``), by name without the prefix, as the strings they are."""
    environ = os.environ if environ is None else environ
    return {key[len(PREFIX) :]: value for key, value in environ.items() if key[len(PREFIX) :] in BY_NAME}


def unknown_environment_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """``WEBHOOK_*`` variables that name no setting of ours nor of Flask's: most likely typos worth a warning.
    (Flask's own, ``WEBHOOK_SECRET_KEY`` say, reach the app's config as Flask reads them.)"""
    from flask import Flask

    environ = os.environ if environ is None else environ
    known = {*BY_NAME, *Flask.default_config}
    return sorted(key for key in environ if key.startswith(PREFIX) and key[len(PREFIX) :] not in known)


def unknown_environment_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per unknown ``WEBHOOK_*`` variable, naming the setting it most likely meant."""
    warnings = []
    for name in unknown_environment_names(environ):
        close = difflib.get_close_matches(name[len(PREFIX) :], list(BY_NAME), n=1, cutoff=0.6)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else " (a typo?)"
        warnings.append(f"{name} is set but is not a comms-webhook setting, so it is ignored{hint}")
    return warnings
