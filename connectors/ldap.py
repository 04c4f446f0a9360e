"""The ``ldap`` connector: OpenLDAP and Active Directory through ldap3."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from connectors.ldapcommon import Attributes, SchemaName, Search
from syncd.config.base import Model
from syncd.config.types import Duration
from syncd.connector import Connector, ConnectorConfig


class TlsConfig(Model):
    """Certificate verification (on by default) and an optional client certificate."""

    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = Field(None, description="client certificate (SASL EXTERNAL)")
    key_file: str | None = None


class Timeouts(Model):
    """Timeouts on connect and on each operation."""

    connect: Duration = "10s"
    operation: Duration = "60s"


class LdapConfig(ConnectorConfig):
    """An LDAP server: OpenLDAP, 389-ds or Active Directory."""

    type: Literal["ldap"]
    url: str = Field(pattern=r"^ldaps?://", examples=["ldaps://ldap.example.org"])
    start_tls: bool = False
    tls: TlsConfig = Field(default_factory=TlsConfig)
    bind_dn: str | None = None
    password: SecretStr | None = None
    sasl: Literal["external"] | None = Field(None, description="SASL mechanism instead of a "
                                             "simple bind")
    allow_insecure: bool = Field(False, description="allow a clear-text simple bind to a "
                                 "non-loopback host")
    schema_: SchemaName = Field("rfc4519", alias="schema")
    page_size: int = Field(500, ge=1, le=100000)
    groups: Search
    users: Search
    attributes: Attributes = Field(default_factory=Attributes)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retries: int = Field(3, ge=0, le=10, description="retries on transient errors in a run")
    in_chain: bool = Field(False, description="AD: resolve nesting on the server "
                           "(LDAP_MATCHING_RULE_IN_CHAIN)")

    @model_validator(mode="after")
    def _bind(self) -> LdapConfig:
        if self.password is not None and self.bind_dn is None:
            raise ValueError("password given without bind_dn")
        if self.url.startswith("ldaps://") and self.start_tls:
            raise ValueError("start_tls does not apply to ldaps:// URLs")
        return self


class LdapConnector(Connector):
    """Reads groups and users from an LDAP server."""

    type_name = "ldap"
    config_model: ClassVar[type[ConnectorConfig]] = LdapConfig
