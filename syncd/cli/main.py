"""The ``syncd`` entry point: global options, error handling and the command groups."""

from __future__ import annotations

import sys
from typing import Any

import click
import structlog
from sqlalchemy.exc import SQLAlchemyError

from syncd import __version__, secrets
from syncd import logging as syncd_logging
from syncd.cli.admin import groups, members, users
from syncd.cli.app import App
from syncd.cli.config import check_config, config_group
from syncd.cli.connection import test_connection
from syncd.cli.run import run
from syncd.cli.store import audit, db
from syncd.cli.sync import apply_cmd, explain, status, sync
from syncd.errors import EXIT_RUNTIME, EXIT_USAGE, ConfigError, StoreError, SyncdError

ISSUES_URL = "the syncd issue tracker"


class SyncdGroup(click.Group):
    """Turns SyncdError into one clear line and its exit code; anything else into a report."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            ctx.exit(exc.exit_code)
        except SyncdError as exc:
            # syncd's own sentence: the safety net keeps its names readable (syncd.secrets).
            click.echo(f"syncd: error: {secrets.redact_own(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except SQLAlchemyError as exc:
            # The store failed after it opened (a corrupt page, a lost server): one line.
            app = ctx.find_object(App)
            error = app.store_failure(exc) if app is not None else StoreError(str(exc))
            click.echo(f"syncd: error: {secrets.redact(str(error))}", err=True)
            ctx.exit(error.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            structlog.get_logger("syncd").exception("internal_error")
            click.echo(f"syncd: internal error: {exc.__class__.__name__}: "
                       f"{secrets.redact(str(exc))} (please report it to {ISSUES_URL})",
                       err=True)
            ctx.exit(EXIT_RUNTIME)
        finally:
            app = ctx.find_object(App)
            if app is not None:
                app.close()


@click.group(cls=SyncdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", metavar="PATH", envvar=None,
              help="config file (default: $SYNCD_CONFIG, else /etc/syncd/syncd.yaml)")
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]), default="auto",
              show_default=True, help="log format on stderr")
@click.option("-v", "--verbose", count=True, help="more logging (-vv: libraries too)")
@click.option("-q", "--quiet", is_flag=True, help="warnings and errors only")
@click.version_option(__version__, prog_name="syncd")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_format: str, verbose: int,
        quiet: bool) -> None:
    """syncd keeps the application's groups in step with a directory."""
    syncd_logging.configure(log_format, -1 if quiet else verbose)  # type: ignore[arg-type]
    ctx.obj = App(config_path)


cli.add_command(sync)
cli.add_command(apply_cmd)
cli.add_command(explain)
cli.add_command(status)
cli.add_command(run)
cli.add_command(check_config)
cli.add_command(config_group)
cli.add_command(db)
cli.add_command(audit)
cli.add_command(groups)
cli.add_command(members)
cli.add_command(users)
cli.add_command(test_connection)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="syncd", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        # click reports usage errors with exit 2, as CONTRACT section 4 wants.
        sys.exit(code if isinstance(code, int) else (EXIT_USAGE if code else 0))
