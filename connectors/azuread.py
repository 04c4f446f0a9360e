"""The ``azuread`` connector: Azure AD (Microsoft Entra ID) through Microsoft Graph."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from syncd.config.base import Model
from syncd.connector import Connector, ConnectorConfig


class Certificate(Model):
    """A client certificate instead of a client secret."""

    key_file: str
    cert_file: str


class GraphTls(Model):
    """Certificate verification of the authority and Graph endpoints."""

    verify: bool = True
    ca_file: str | None = None


class GraphGroups(Model):
    """Which groups are in scope."""

    filter: str | None = Field(None, description="Graph $filter", examples=[
        "startswith(displayName,'eng-')"])


class AzureAdConfig(ConnectorConfig):
    """An Azure AD tenant, read with an app registration's client credentials."""

    type: Literal["azuread"]
    tenant_id: str
    client_id: str
    client_secret: SecretStr | None = None
    certificate: Certificate | None = None
    authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com/v1.0"
    tls: GraphTls = Field(default_factory=GraphTls)
    groups: GraphGroups = Field(default_factory=GraphGroups)

    @model_validator(mode="after")
    def _credential(self) -> AzureAdConfig:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret, certificate")
        return self


class AzureAdConnector(Connector):
    """Reads groups and users from Microsoft Graph."""

    type_name = "azuread"
    config_model: ClassVar[type[ConnectorConfig]] = AzureAdConfig
