"""The sync rule language of CONTRACT section 3, as validated models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from syncd.config.base import Model
from syncd.config.types import Limit, Regex, Template
from syncd.store.names import name_problem, shown


class Match(Model):
    """Value tests shared by ``name``, ``dn`` and ``attribute`` conditions."""

    equals: str | None = Field(None, description="exact value (case-insensitive for DNs)")
    in_: list[str] | None = Field(None, alias="in", description="one of these values")
    glob: str | None = Field(None, description="shell-style pattern", examples=["eng-*"])
    regex: Regex | None = Field(None, description="Python regular expression (search)")

    def _tests(self) -> list[str]:
        return [k for k in ("equals", "in_", "glob", "regex") if getattr(self, k) is not None]


class NameMatch(Match):
    """Tests on the source group's name."""

    @model_validator(mode="after")
    def _one(self) -> NameMatch:
        if not self._tests():
            raise ValueError("give one of equals, in, glob, regex")
        return self


class DnMatch(Match):
    """Tests on the source group's DN (or path)."""

    under: str | None = Field(None, description="the DN lies below this one (or is it)")

    @model_validator(mode="after")
    def _one(self) -> DnMatch:
        if not self._tests() and self.under is None:
            raise ValueError("give one of equals, in, glob, regex, under")
        return self


class AttributeMatch(Match):
    """Tests on one attribute of the source group: true if any value matches."""

    name: str = Field(description="attribute name (case-insensitive)")
    present: bool | None = Field(None, description="the attribute has at least one value")

    @model_validator(mode="after")
    def _one(self) -> AttributeMatch:
        if not self._tests() and self.present is None:
            raise ValueError("give one of equals, in, glob, regex, present")
        return self


class MembersMatch(Model):
    """Counts of the direct member references that resolve to a user or a group."""

    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> MembersMatch:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class Condition(Model):
    """One condition; several keys in one mapping must all hold."""

    name: NameMatch | None = None
    dn: DnMatch | None = None
    attribute: AttributeMatch | None = None
    members: MembersMatch | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")

    @model_validator(mode="after")
    def _non_empty(self) -> Condition:
        if not self.model_fields_set:
            raise ValueError("empty condition: give name, dn, attribute, members, all, any or not")
        return self


def _organisation(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(f"organisation {shown(value)} {problem}")
    return value


class GroupTemplate(Model):
    """How a matched source group maps to a local group."""

    name: Template = "{name}"
    description: Template = "{description}"
    kind: Literal["standard", "open"] = "standard"
    organisation: Annotated[str, AfterValidator(_organisation)] = "default"
    icon: Template | None = None


class RoleSource(Model):
    """Who holds a role: DNs in an attribute of the source group, or members of another group."""

    attribute: str | None = Field(None, description="DN-valued attribute of the source group")
    group: str | None = Field(None, description="DN, name or id of another source group")

    @model_validator(mode="after")
    def _exactly_one(self) -> RoleSource:
        if (self.attribute is None) == (self.group is None):
            raise ValueError("give exactly one of attribute, group")
        return self


class MemberPolicy(Model):
    """Nesting, unknown and disabled users."""

    nested: Literal["flatten", "ignore"] = "flatten"
    unknown_users: Literal["create", "invite", "skip"] = "create"
    disabled_users: Literal["deactivate", "remove"] = "deactivate"


class RuleSafety(Model):
    """Per-rule overrides of the global safety limits."""

    max_group_deletes: Limit | None = None
    max_member_removals: Limit | None = None


class Rule(Model):
    """One sync rule; rules are tried in order and the first match decides."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    source: str = Field("*", description="a connector name, or * for all")
    when: Condition | None = None
    action: Literal["sync", "skip"] = "sync"
    group: GroupTemplate = Field(default_factory=GroupTemplate)
    roles: dict[str, RoleSource] = Field(
        default_factory=dict,
        description="role name -> who holds it (owner, facilitator or a custom role); "
        "everyone else is a member",
    )
    members: MemberPolicy = Field(default_factory=MemberPolicy)
    on_source_delete: Literal["delete", "archive", "keep"] = "delete"
    adopt_existing: bool = False
    safety: RuleSafety | None = None

    @model_validator(mode="after")
    def _roles(self) -> Rule:
        if "member" in self.roles:
            raise ValueError("roles: 'member' is the default role and cannot be given a source")
        return self
