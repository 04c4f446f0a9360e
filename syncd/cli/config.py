"""``syncd check-config`` and ``syncd config schema``."""

from __future__ import annotations

import click

from syncd.cli.app import get_app, print_json
from syncd.config.model import config_model


@click.command("check-config")
def check_config() -> None:
    """Validate the config; print every problem as FILE:LINE:COL: message."""
    app = get_app()
    cfg = app.config
    click.echo(f"{app.config_path}: ok ({len(cfg.connectors)} connectors, "
               f"{len(cfg.rules)} rules)")


@click.group("config")
def config_group() -> None:
    """Config helpers."""


@config_group.command("schema")
def schema() -> None:
    """Print the JSON Schema of the config file (for editors)."""
    data = config_model().model_json_schema(by_alias=True)
    data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    data["title"] = "syncd configuration"
    print_json(data)
