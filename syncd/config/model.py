"""The top-level config model; the connectors' part is assembled from the installed plugins."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, PrivateAttr, create_model, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from syncd.config.base import Model
from syncd.config.rules import Rule
from syncd.config.types import Limit
from syncd.connector import ConnectorConfig, available
from syncd.store.schema import ROLES

# Entra Connect stops an export above 500 deletions; a group holds many memberships, so
# far fewer groups than that are already a mass deletion.
DEFAULT_MAX_GROUP_DELETES = 25
DEFAULT_MAX_MEMBER_REMOVALS = 500
# The databases the store is written for (syncd/store: SQLite and PostgreSQL).
STORE_BACKENDS = ("sqlite", "postgresql")


class StoreConfig(Model):
    """The group store."""

    url: str = Field(
        "sqlite:////var/lib/syncd/syncd.db",
        description="SQLAlchemy URL; a relative SQLite path is relative to the config file",
        examples=["sqlite:////var/lib/syncd/syncd.db",
                  "postgresql+psycopg://syncd@db.example.org/syncd"],
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        # The messages never quote the URL: it may hold a password.
        try:
            url = make_url(v)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise ValueError(
                "not an SQLAlchemy URL: expected e.g. sqlite:////var/lib/syncd/syncd.db or "
                "postgresql+psycopg://syncd@db.example.org/syncd") from None
        backend = url.get_backend_name()
        if backend not in STORE_BACKENDS:
            raise ValueError(f"unsupported database {backend!r}: the store is SQLite "
                             "(sqlite:///...) or PostgreSQL (postgresql+psycopg://...)")
        try:
            url.get_dialect()  # loads SQLAlchemy's dialect module only, not the driver
        except NoSuchModuleError:
            raise ValueError(f"unknown database driver {url.get_driver_name()!r} for "
                             f"{backend}") from None
        return v


class AuditConfig(Model):
    """Where audit records go besides the store."""

    file: str | None = Field(None, description="JSON-lines file the records are appended to")


class SafetyConfig(Model):
    """Limits per run and connector: a count, or ``"N%"`` of what the connector manages now.

    They hold even when the block is left out (docs/safety.md): one mistake in a rule must
    not delete everything. ``"100%"`` turns a limit off.
    """

    max_group_deletes: Limit = Field(
        DEFAULT_MAX_GROUP_DELETES, description="most groups one run may delete or archive "
        '("100%" turns the limit off)')
    max_member_removals: Limit = Field(
        DEFAULT_MAX_MEMBER_REMOVALS, description="most memberships one run may remove "
        '("100%" turns the limit off)')
    shrink_guard: Limit = Field(
        "50%", description="block when a connector returns fewer groups than this share of "
        'its last complete snapshot ("0%" turns the guard off)')


def _plain_int(v: Any) -> Any:
    # Literal[1] alone takes true and 1.0 (they equal 1): only the integer is version 1.
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"unsupported config version {v!r}: this syncd reads version 1")
    return v


class BaseConfig(Model):
    """Everything but the connectors, whose models come from the plugins."""

    version: Annotated[Literal[1], BeforeValidator(_plain_int)] = Field(
        description="the config format version", examples=[1])
    store: StoreConfig = Field(default_factory=StoreConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    custom_roles: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]] = Field(
        default_factory=list,
        description="roles besides owner, facilitator and member that rules and admins may give",
    )
    connectors: list[ConnectorConfig] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    _path: Path | None = PrivateAttr(None)

    @property
    def path(self) -> Path | None:
        """The file this config was loaded from."""
        return self._path

    @property
    def base_dir(self) -> Path:
        """The directory relative paths are resolved against."""
        return self._path.parent if self._path else Path.cwd()

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role a membership may have."""
        return (*ROLES, *self.custom_roles)

    def connector(self, name: str) -> ConnectorConfig:
        """The connector called ``name``; KeyError if none."""
        for c in self.connectors:
            if c.name == name:
                return c
        raise KeyError(name)

    def resolve_path(self, value: str) -> Path:
        """A path from the config, made absolute against the config file's directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


@cache
def config_model() -> type[BaseConfig]:
    """The full config model, with a ``type``-discriminated union of every connector."""
    models = tuple(cls.config_model for cls in available().values())
    connector_type: Any = Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007
    model: type[BaseConfig] = create_model(
        "Config",
        __base__=BaseConfig,
        __doc__="syncd configuration",
        connectors=(list[connector_type], Field(default_factory=list)),
    )
    return model


# The name other modules type against; instances are of config_model().
Config = BaseConfig
