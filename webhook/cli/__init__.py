"""The ``comms-webhook`` command, on click (Flask's own CLI library).

Each command is a thin call into the modules; settings come from the same ``WEBHOOK_*`` variables as the
receiver, so ``comms-webhook calls`` reads the store ``comms-webhook serve`` writes. Commands import what they
need when they run: ``comms-webhook --help`` must not pay for Flask, the app and the crypto libraries.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from . import checks, fake, serve, stored, tools, upkeep


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="comms-webhook", prog_name="comms-webhook", message="%(prog)s %(version)s")
def cli() -> None:
    """The callback URL of a Microsoft Graph calling bot. Settings: WEBHOOK_* variables (see check-config)."""
    # As `flask` does: a plugin module beside the user (WEBHOOK_PLUGINS=mybot) is importable by every command.
    # gunicorn's workers, started with `python -m`, have the current directory on their path already.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


for command in (
    serve.serve,
    stored.calls,
    stored.call,
    stored.failures,
    stored.plugins,
    upkeep.resync,
    checks.check_config,
    checks.check_auth,
    tools.replay,
    tools.simulate,
    fake.fake_graph,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status (0 fine, 1 something failed, 2 a usage or settings error)."""
    from ..errors import WebhookError

    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="comms-webhook", standalone_mode=False
        )
    except click.exceptions.Exit as exc:  # --help, --version
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except WebhookError as exc:
        click.echo(f"comms-webhook: {exc.message}", err=True)
        return 2
    except BrokenPipeError:
        # The reader went away (`comms-webhook calls --json | head`): end quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(result or 0)


def run() -> None:
    """The console script: :func:`main`'s status as the process's exit status."""
    sys.exit(main())
