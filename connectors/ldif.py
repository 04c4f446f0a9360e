"""The ``ldif`` connector: a directory read from an LDIF file (demo, tests, offline imports)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from connectors.ldapcommon import Attributes, SchemaName, Search
from syncd.connector import Connector, ConnectorConfig


class LdifConfig(ConnectorConfig):
    """An LDIF file; relative paths are relative to the config file."""

    type: Literal["ldif"]
    path: str = Field(description="the LDIF file", examples=["demo/directory.ldif"])
    schema_: SchemaName = Field("rfc4519", alias="schema")
    groups: Search = Field(default_factory=Search)
    users: Search = Field(default_factory=Search)
    attributes: Attributes = Field(default_factory=Attributes)


class LdifConnector(Connector):
    """Reads groups and users from an LDIF file."""

    type_name = "ldif"
    config_model: ClassVar[type[ConnectorConfig]] = LdifConfig
