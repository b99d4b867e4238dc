"""gunicorn settings for comms-webhook: the ones the package ships (``webhook/gunicorn_conf.py``, which
``comms-webhook serve`` uses too), read as a file so that the master process does not import the app.
Override any of them below, or with gunicorn's command-line options."""

import importlib.util
import pathlib

_shipped = pathlib.Path(importlib.util.find_spec("webhook").origin).with_name("gunicorn_conf.py")
exec(compile(_shipped.read_text(), str(_shipped), "exec"))
