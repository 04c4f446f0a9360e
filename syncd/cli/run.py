"""``syncd run``: the daemon."""

from __future__ import annotations

import click

from syncd.cli.app import get_app
from syncd.daemon import Daemon


@click.command()
def run() -> None:
    """The daemon: schedules every connector, runs until SIGTERM."""
    app = get_app()
    Daemon(app.config, app.engine(), app.audit_writer()).serve()
