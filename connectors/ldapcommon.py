"""Config pieces shared by the LDAP-shaped connectors (ldap, ldif): presets and searches."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from syncd.config.base import Model
from syncd.config.rules import AttributeMatch
from syncd.config.types import LdapFilter

SchemaName = Literal["rfc4519", "rfc2307", "ad"]

ATTRIBUTE_KEYS = ("id", "group_name", "description", "member", "user_name", "email",
                  "display_name")

PRESETS: dict[str, dict[str, str]] = {
    "rfc4519": {"id": "entryUUID", "group_name": "cn", "description": "description",
                "member": "member", "user_name": "uid", "email": "mail", "display_name": "cn"},
    "rfc2307": {"id": "entryUUID", "group_name": "cn", "description": "description",
                "member": "memberUid", "user_name": "uid", "email": "mail",
                "display_name": "cn"},
    "ad": {"id": "objectGUID", "group_name": "cn", "description": "description",
           "member": "member", "user_name": "sAMAccountName", "email": "mail",
           "display_name": "displayName"},
}

DEFAULT_GROUP_FILTER = {
    "rfc4519": "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
    "rfc2307": "(objectClass=posixGroup)",
    "ad": "(objectClass=group)",
}
DEFAULT_USER_FILTER = {
    "rfc4519": "(objectClass=inetOrgPerson)",
    "rfc2307": "(objectClass=posixAccount)",
    "ad": "(&(objectClass=user)(!(objectClass=computer)))",
}


class Search(Model):
    """Where and what to search."""

    base: str = Field("", description="search base DN")
    filter: LdapFilter | None = Field(None, description="RFC 4515 filter; preset default if null")
    scope: Literal["subtree", "one", "base"] = "subtree"


class Attributes(Model):
    """Overrides of the preset's attribute names."""

    id: str | None = None
    group_name: str | None = None
    description: str | None = None
    member: str | None = None
    user_name: str | None = None
    email: str | None = None
    display_name: str | None = None
    user_disabled: AttributeMatch | None = Field(
        None, description="a condition on a user entry that marks it disabled",
        examples=[{"name": "nsAccountLock", "equals": "TRUE"}],
    )
    user_external: AttributeMatch | None = Field(
        None, description="a condition on a user entry that marks it external (a guest)",
    )

    @field_validator("id", "group_name", "description", "member", "user_name", "email",
                     "display_name")
    @classmethod
    def _attr_name(cls, v: str | None) -> str | None:
        if v is not None and not v.replace("-", "").replace(";", "").isalnum():
            raise ValueError(f"invalid attribute name {v!r}")
        return v

    def resolved(self, schema: str) -> dict[str, str]:
        """The preset for ``schema`` with these overrides applied."""
        out = dict(PRESETS[schema])
        for key in ATTRIBUTE_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out
