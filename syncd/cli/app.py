"""What every command shares: the loaded config, the store engine, output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import click
import structlog
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd.audit import AuditWriter, cli_actor
from syncd.config.loader import find_config, load_config
from syncd.config.model import Config
from syncd.errors import StoreError
from syncd.store.admin import Admin
from syncd.store.db import (
    NoStoreError,
    location,
    open_engine,
    open_store,
    resolve_url,
    store_failure,
    upgrade,
)
from syncd.store.schema import Base

log = structlog.get_logger("syncd.cli")


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

    def engine(self, *, create: bool = True) -> Engine:
        """The store engine, at this syncd's schema. A command that writes makes a missing
        store; one that only reads passes ``create=False`` and gets a usage error instead."""
        engine = open_store(self.store_url, create=create,
                            origin=f"store.url in {self.config_path.resolve()}")
        self._engines.append(engine)
        return engine

    def engine_or_empty(self) -> Engine:
        """The store engine, or where there is no store an empty one in memory: for a command
        that can answer without a store (from the source) and must not make one."""
        try:
            return self.engine(create=False)
        except NoStoreError as exc:
            log.warning("store.missing", store=location(self.store_url), problem=str(exc))
        engine = open_engine("sqlite://")
        self._engines.append(engine)
        Base.metadata.create_all(engine)
        return engine

    def upgrade_store(self) -> tuple[str | None, str]:
        """Create or migrate the store's schema; return the revisions (before, after)."""
        engine = open_engine(self.store_url)
        self._engines.append(engine)
        return upgrade(engine)

    def store_failure(self, exc: SQLAlchemyError) -> StoreError:
        """The one-line error for the store failing while a command uses it."""
        return store_failure(self.store_url, exc)

    def audit_writer(self) -> AuditWriter:
        """The audit writer for the configured file."""
        file = self.config.audit.file
        return AuditWriter(self.config.resolve_path(file) if file else None)

    def admin(self, *, create: bool = True) -> Admin:
        """Admin operations acting as ``cli:USER``; ``create`` as for ``engine``."""
        return Admin(self.engine(create=create), self.audit_writer(), cli_actor(),
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
