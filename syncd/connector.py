"""What every connector is: its config model, and how the engine finds it by ``type``."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import structlog
from pydantic import Field

from syncd.config.base import Model
from syncd.config.types import Cron, Duration
from syncd.source import Delta, Snapshot

ENTRY_POINT_GROUP = "syncd.connectors"

# The built-in connectors, used when the distribution's entry points are not installed
# (running from a source tree); installed entry points take precedence.
BUILTIN = {
    "ldif": "connectors.ldif:LdifConnector",
    "ldap": "connectors.ldap:LdapConnector",
    "azuread": "connectors.azuread:AzureAdConnector",
}


class Schedule(Model):
    """When ``syncd run`` runs the connector."""

    delta: Duration | None = Field(
        None, description="interval of incremental runs (full runs where there are no deltas)"
    )
    full: Cron | None = Field(None, description="cron expression for complete reconciliations")


class ConnectorConfig(Model):
    """Keys every connector has."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="unique connector name")
    type: str
    schedule: Schedule = Field(default_factory=Schedule)


class Connector:
    """Base class of connectors; subclasses set ``type_name`` and ``config_model``.

    A connector is made per run with its validated config, the directory relative paths
    are resolved against, and the set of source-group attribute names (lower case) that the
    rules use, so that it fetches only those.
    """

    type_name: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]
    supports_delta: ClassVar[bool] = False

    def __init__(self, config: ConnectorConfig, *, base_dir: Path,
                 needed_attributes: frozenset[str] = frozenset()) -> None:
        self.config = config
        self.base_dir = base_dir
        self.needed_attributes = needed_attributes

    def normalise_ref(self, value: str) -> str:
        """The ref for a value written in a rule or a DN-valued attribute (e.g. a DN)."""
        return value

    def snapshot(self) -> Snapshot:
        """A complete pull of users and groups in scope (streams; raise SourceError)."""
        raise NotImplementedError

    def delta(self, cursor: dict[str, Any]) -> Delta | None:
        """Changes since ``cursor``, or None when a full snapshot is needed instead."""
        return None

    def begin_delta(self, cursor: dict[str, Any]) -> Delta | None:
        """``delta``, except that the delta may still be finding its removals when it is
        returned (``Delta.settle`` waits for them), so that the engine can read the mirror
        meanwhile. The engine calls this one."""
        return self.delta(cursor)

    def test_connection(self) -> dict[str, Any]:
        """Connect, count groups and users in scope, and report timings."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


def _load(spec: str) -> type[Connector]:
    module_name, _, attr = spec.partition(":")
    module = __import__(module_name, fromlist=[attr])
    cls: type[Connector] = getattr(module, attr)
    return cls


def available() -> dict[str, type[Connector]]:
    """Every connector class by its type name: built-ins, then installed plugins.

    A plugin that fails to import is left out with an error in the log, so that one broken
    plugin does not stop connectors of other types; a config using its type then fails
    with "unknown connector type".
    """
    found: dict[str, Any] = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep
    out: dict[str, type[Connector]] = {}
    for name, target in sorted(found.items()):
        try:
            out[name] = _load(target) if isinstance(target, str) else target.load()
        except Exception as exc:
            structlog.get_logger("syncd.connector").error(
                "connector.import_failed", type=name,
                error=f"{exc.__class__.__name__}: {exc}")
    return out
