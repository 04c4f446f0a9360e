"""What every command shares: the loaded config, the store engine, output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from syncd.audit import AuditWriter, cli_actor
from syncd.config.loader import find_config, load_config
from syncd.config.model import Config
from syncd.store.admin import Admin
from syncd.store.db import ensure_schema, open_engine, resolve_url


@dataclass
class App:
    """Lazily loaded state for one command invocation."""

    config_option: str | None
    _engines: list[Engine] = field(default_factory=list)

    @cached_property
    def config_path(self) -> Path:
        """The config file in use."""
        return find_config(self.config_option)

    @cached_property
    def config(self) -> Config:
        """The validated config (raises ConfigError)."""
        return load_config(self.config_path)

    @cached_property
    def store_url(self) -> str:
        """The store URL with relative SQLite paths resolved."""
        return resolve_url(self.config.store.url, self.config.base_dir)

    def engine(self, create_schema: bool = True) -> Engine:
        """The store engine; by default creates the schema of an empty store."""
        engine = open_engine(self.store_url)
        self._engines.append(engine)
        if create_schema:
            ensure_schema(engine)
        return engine

    def audit_writer(self) -> AuditWriter:
        """The audit writer for the configured file."""
        file = self.config.audit.file
        return AuditWriter(self.config.resolve_path(file) if file else None)

    def admin(self) -> Admin:
        """Admin operations acting as ``cli:USER``."""
        return Admin(self.engine(), self.audit_writer(), cli_actor(),
                     tuple(self.config.custom_roles))

    def close(self) -> None:
        """Dispose of every engine opened."""
        for engine in self._engines:
            engine.dispose()


def get_app() -> App:
    """The App of the current click context."""
    app = click.get_current_context().find_object(App)
    assert app is not None, "commands run under the syncd group"
    return app


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_json_lines(items: list[Any]) -> None:
    """JSON lines on stdout."""
    for item in items:
        click.echo(json.dumps(item, ensure_ascii=False, default=str))


def console() -> Console:
    """A rich console on stdout (plain text when stdout is not a terminal)."""
    width = None if sys.stdout.isatty() else 160
    return Console(file=sys.stdout, soft_wrap=True, highlight=False, width=width)


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """A table for people."""
    table = Table(title=title, show_edge=False, header_style="bold")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console().print(table)


format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
    show_default=True, help="table for people, json for scripts",
)
