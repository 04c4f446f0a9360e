"""Rules over a source index: which groups are in scope, how they map, who is in them.

Produces the desired state's groups (``DesiredGroup``) and, group by group on demand, their
desired members; the diff compares those with the store. Nothing here reads the store.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from syncd.config.rules import AttributeMatch, Condition, DnMatch, Match, Rule
from syncd.index import SourceIndex
from syncd.source import SourceGroup

Normalise = Callable[[str], str]


@dataclass(slots=True)
class DesiredGroup:
    """A group the rules want in the store, keyed by the source's external id."""

    pos: int
    external_id: str
    rule: Rule
    name: str
    description: str
    kind: str
    organisation: str
    icon: str | None


@dataclass(frozen=True, slots=True)
class Warning:
    """A problem that does not stop the run (CONTRACT: ``{"code", "message"}``)."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        """The JSON shape of a warning."""
        return {"code": self.code, "message": self.message}


# -- conditions ---------------------------------------------------------------------------

@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _match_value(m: Match, value: str) -> bool:
    folded = value.casefold()
    if m.equals is not None and folded != m.equals.casefold():
        return False
    if m.in_ is not None and folded not in {v.casefold() for v in m.in_}:
        return False
    if m.glob is not None and not fnmatch.fnmatchcase(folded, m.glob.casefold()):
        return False
    return m.regex is None or _regex(m.regex).search(value) is not None


def _describe_match(m: Match) -> str:
    parts = []
    for key, label in (("equals", "equals"), ("in_", "in"), ("glob", "glob"), ("regex", "regex")):
        value = getattr(m, key)
        if value is not None:
            parts.append(f"{label} {value!r}")
    if isinstance(m, DnMatch) and m.under is not None:
        parts.append(f"under {m.under!r}")
    if isinstance(m, AttributeMatch) and m.present is not None:
        parts.append(f"present {str(m.present).lower()}")
    return " and ".join(parts)


class Evaluator:
    """Evaluates conditions for one connector's groups (DN tests use its normalisation)."""

    def __init__(self, index: SourceIndex, normalise: Normalise) -> None:
        self.index = index
        self.normalise = normalise

    def _norm(self, value: str) -> str:
        try:
            return self.normalise(value)
        except ValueError:
            return value.casefold()

    def _dn(self, m: DnMatch, dn: str) -> bool:
        if m.under is not None:
            base, norm = self._norm(m.under), self._norm(dn)
            if base and not (norm == base or norm.endswith("," + base)):
                return False
        if m.equals is not None and self._norm(dn) != self._norm(m.equals):
            return False
        if m.in_ is not None and self._norm(dn) not in {self._norm(v) for v in m.in_}:
            return False
        rest = m.model_copy(update={"equals": None, "in_": None})
        return _match_value(rest, dn)

    @staticmethod
    def _attribute(m: AttributeMatch, values: list[str]) -> bool:
        if m.present is not None and bool(values) != m.present:
            return False
        tests = [m.equals, m.in_, m.glob, m.regex]
        if all(t is None for t in tests):
            return True
        return any(_match_value(m, v) for v in values)

    def check(self, cond: Condition, pos: int) -> str | None:
        """None when ``cond`` holds for group ``pos``; else why it failed (first failure)."""
        g = self.index.groups[pos]
        if cond.name is not None and not _match_value(cond.name, g.name):
            return f"name {g.name!r} does not match {_describe_match(cond.name)}"
        if cond.dn is not None and not self._dn(cond.dn, g.dn):
            return f"dn {g.dn!r} does not match {_describe_match(cond.dn)}"
        if cond.attribute is not None:
            values = g.attributes.get(cond.attribute.name.lower(), [])
            if not self._attribute(cond.attribute, values):
                return (f"attribute {cond.attribute.name} {values!r} does not match "
                        f"{_describe_match(cond.attribute)}")
        if cond.members is not None:
            n = self.index.direct_count(pos)
            lo, hi = cond.members.min, cond.members.max
            if (lo is not None and n < lo) or (hi is not None and n > hi):
                return f"members: {n} direct members, not within min {lo} max {hi}"
        for sub in cond.all or []:
            why = self.check(sub, pos)
            if why is not None:
                return why
        if cond.any is not None:
            reasons = [self.check(sub, pos) for sub in cond.any]
            if all(r is not None for r in reasons):
                return "none of 'any' matched: " + "; ".join(r for r in reasons if r)
        if cond.not_ is not None and self.check(cond.not_, pos) is None:
            return "the 'not' condition matched"
        return None


# -- templates ----------------------------------------------------------------------------

class _Attrs:
    """``{attr[NAME]}``: the first value of an attribute, or an empty string."""

    def __init__(self, group: SourceGroup) -> None:
        self.group = group

    def __getitem__(self, name: str) -> str:
        values = self.group.attributes.get(name.lower(), [])
        return values[0] if values else ""


def render(template: str, group: SourceGroup) -> str:
    """Fill a template from a source group (fields validated at config load)."""
    return template.format(name=group.name, description=group.description, dn=group.dn,
                           id=group.external_id, attr=_Attrs(group)).strip()


# -- the rule pass ------------------------------------------------------------------------

@dataclass
class Decision:
    """Why a rule did or did not decide a group (for ``syncd explain``)."""

    rule: str
    matched: bool
    reason: str | None


def rules_for(rules: list[Rule], connector: str) -> list[Rule]:
    """The rules that apply to a connector, in order."""
    return [r for r in rules if r.source in ("*", connector)]


def decide(rules: list[Rule], evaluator: Evaluator, pos: int) -> Rule | None:
    """The first rule whose conditions hold for group ``pos``, if any."""
    for rule in rules:
        if rule.when is None or evaluator.check(rule.when, pos) is None:
            return rule
    return None


def explain(rules: list[Rule], connector: str, evaluator: Evaluator, pos: int) -> list[Decision]:
    """Every rule in order up to the deciding one, with the first failed condition of each."""
    out = []
    for rule in rules:
        if rule.source not in ("*", connector):
            out.append(Decision(rule.name, False, f"source is {rule.source!r}, not {connector!r}"))
            continue
        why = None if rule.when is None else evaluator.check(rule.when, pos)
        out.append(Decision(rule.name, why is None, why))
        if why is None:
            break
    return out


def desired_groups(rules: list[Rule], connector: str, evaluator: Evaluator,
                   warnings: list[Warning] | None = None) -> Iterator[DesiredGroup]:
    """The groups the rules put in scope (skip rules and unmatched groups left out).

    A group whose name template renders empty (an attribute it lacks) is left out with an
    ``empty_name`` warning: a group without a name is never made.
    """
    applicable = rules_for(rules, connector)
    for pos, group in enumerate(evaluator.index.groups):
        rule = decide(applicable, evaluator, pos)
        if rule is None or rule.action == "skip":
            continue
        t = rule.group
        name = render(t.name, group)
        if not name:
            if warnings is not None:
                warnings.append(Warning("empty_name", f"source group {group.dn!r}: rule "
                                        f"{rule.name!r} names it {t.name!r}, which renders "
                                        "empty; it is skipped"))
            continue
        yield DesiredGroup(
            pos=pos, external_id=group.external_id, rule=rule, name=name,
            description=render(t.description, group), kind=t.kind,
            organisation=t.organisation, icon=render(t.icon, group) if t.icon else None,
        )


def fingerprint(rules: list[Rule]) -> str:
    """A digest of rules as validated (defaults filled in): equal rules, equal digests."""
    text = json.dumps([r.model_dump(mode="json", by_alias=True) for r in rules],
                      sort_keys=True, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def needed_attributes(rules: list[Rule]) -> frozenset[str]:
    """Source-group attribute names (lower case) that the rules read."""
    names: set[str] = set()

    def walk(cond: Condition | None) -> None:
        if cond is None:
            return
        if cond.attribute is not None:
            names.add(cond.attribute.name.lower())
        for sub in [*(cond.all or []), *(cond.any or [])]:
            walk(sub)
        walk(cond.not_)

    for rule in rules:
        walk(rule.when)
        templates = [rule.group.name, rule.group.description, rule.group.icon or ""]
        for text in templates:
            names.update(n.lower() for n in re.findall(r"\{attr\[([^\]]+)\]\}", text))
        for source in rule.roles.values():
            if source.attribute:
                names.add(source.attribute.lower())
    return frozenset(names)


@dataclass
class MemberResolver:
    """Desired members of a group: the users in it (nested per rule) and their roles."""

    index: SourceIndex
    normalise: Normalise
    warnings: list[Warning]

    def __post_init__(self) -> None:
        self._role_groups: dict[tuple[str, bool], set[int]] = {}
        # group position -> role attribute values (e.g. owner DNs) that resolve to nothing
        self.unresolved_roles: dict[int, list[str]] = {}
        self._role_positions: set[int] = set()  # role groups flattened through nesting

    def _users_of(self, pos: int, nested: bool) -> set[int]:
        return self.index.flatten(pos, nested)[0]

    def cycle_warnings(self, desired: Iterable[DesiredGroup]) -> list[Warning]:
        """``nesting_cycle``: one warning for each circle of nested groups that the desired
        groups of flattening rules (and the role groups they flattened) reach, the same on
        every run over the same source (a delta run compares only some groups' members, but
        warns of the same cycles)."""
        starts = [*(d.pos for d in desired if d.rule.members.nested == "flatten"),
                  *self._role_positions]
        out = []
        for cycle in self.index.nesting_cycles(starts):
            names = " -> ".join(self.index.groups[g].name for g in [*cycle, cycle[0]])
            out.append(Warning("nesting_cycle", f"nested groups form a cycle: {names}; each "
                               "group is counted once"))
        return out

    def _role_group(self, value: str, nested: bool) -> set[int]:
        key = (value, nested)
        if key not in self._role_groups:
            try:
                ref = self.normalise(value)
            except ValueError:
                ref = None
            pos = self.index.find_group(value, ref)
            if pos is None:
                self.warnings.append(Warning(
                    "role_group_missing", f"role group {value!r} is not in the source, or "
                    "its name is shared by several groups (give its DN or id)"))
                self._role_groups[key] = set()
            else:
                self._role_groups[key] = self._users_of(pos, nested)
                if nested:
                    self._role_positions.add(pos)
        return self._role_groups[key]

    def _role_attribute(self, pos: int, attribute: str, nested: bool) -> set[int]:
        out: set[int] = set()
        for value in self.index.groups[pos].attributes.get(attribute.lower(), []):
            try:
                kind, hit = self.index.lookup(self.normalise(value))
            except ValueError:
                kind, hit = None, -1
            if kind == "user":
                out.add(hit)
            elif kind == "group":
                out |= self._users_of(hit, nested)
            else:
                self.unresolved_roles.setdefault(pos, []).append(value)
        return out

    def members(self, desired: DesiredGroup) -> dict[int, str]:
        """User position -> role, for everyone the group should hold."""
        rule = desired.rule
        nested = rule.members.nested == "flatten"
        users = self._users_of(desired.pos, nested)
        roles: dict[int, str] = dict.fromkeys(users, "member")
        # Earlier roles in the rule win: apply them last.
        for role, source in reversed(list(rule.roles.items())):
            holders = (self._role_attribute(desired.pos, source.attribute, nested)
                       if source.attribute else self._role_group(str(source.group), nested))
            for u in holders:
                roles[u] = role
        return roles

    def dangling(self, desired: DesiredGroup) -> list[str]:
        """Member refs of the group that resolve to nothing."""
        return self.index.members[desired.pos].dangling


def summarise_dangling(groups: list[tuple[str, list[str]]], limit: int = 20,
                       code: str = "dangling_member", what: str = "member reference(s)",
                       ) -> list[Warning]:
    """One warning per group (up to ``limit``), then a total: references that resolve to
    nothing (``dangling_member``), or role values such as owner DNs (``dangling_role``)."""
    out = []
    total = sum(len(refs) for _, refs in groups)
    for name, refs in groups[:limit]:
        shown = ", ".join(refs[:3]) + (f" and {len(refs) - 3} more" if len(refs) > 3 else "")
        out.append(Warning(code, f"group {name!r}: {len(refs)} {what} resolve to "
                           f"nothing: {shown}"))
    if len(groups) > limit:
        out.append(Warning(code, f"{total} {what} resolve to nothing in {len(groups)} "
                           f"groups in all (first {limit} groups listed)"))
    return out


def as_json(obj: Any) -> Any:
    """Warnings and decisions as JSON-ready values."""
    if isinstance(obj, Warning):
        return obj.to_json()
    if isinstance(obj, Decision):
        return {"rule": obj.rule, "matched": obj.matched, "reason": obj.reason}
    raise TypeError(type(obj))
