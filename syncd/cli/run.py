"""``syncd run``: the daemon."""

from __future__ import annotations

import click

from syncd.cli.app import get_app


@click.command()
def run() -> None:
    """The daemon: schedules every connector, runs until SIGTERM."""
    # APScheduler is imported here: every other command would pay for it at start-up
    from syncd.daemon import Daemon

    app = get_app()
    Daemon(app.config, app.engine(), app.audit_writer()).serve()
