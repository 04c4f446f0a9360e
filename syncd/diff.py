"""The diff: desired groups and members (from rules) against the existing store state.

Only what this connector manages is compared; a group or membership written by hand or by
another connector is never changed (ownership, CONTRACT section 3). Name collisions are
warnings and the colliding group is left as it is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from syncd.config.rules import Rule
from syncd.existing import ExistingState, StoreGroup, StoreMember
from syncd.index import SourceIndex
from syncd.plan import (
    AddMember,
    ArchiveGroup,
    Change,
    ChangeRole,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    InviteUser,
    RemoveMember,
    SetMemberStatus,
    UpdateGroup,
)
from syncd.rules import DesiredGroup, MemberResolver, Warning, summarise_dangling

ACTIVE_STATUSES_SYNC_RESTORES = ("deactivated",)


@dataclass
class DiffResult:
    """Changes, warnings, and what the connector manages now (for percentage limits)."""

    changes: list[Change] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    managed_groups: int = 0
    managed_members: int = 0
    # rule name -> (groups, memberships) it manages now
    managed_by_rule: dict[str, tuple[int, int]] = field(default_factory=dict)


class Differ:
    """Compares one connector's desired state with the store."""

    def __init__(self, connector: str, index: SourceIndex, rules: list[Rule],
                 resolver: MemberResolver, existing: ExistingState) -> None:
        self.connector = connector
        self.index = index
        self.rules = {r.name: r for r in rules}
        self.resolver = resolver
        self.existing = existing
        self.result = DiffResult(warnings=resolver.warnings)
        self._new_users: dict[str, Change] = {}
        self._by_rule_groups: dict[str, int] = defaultdict(int)
        self._by_rule_members: dict[str, int] = defaultdict(int)

    # -- groups -----------------------------------------------------------------------------

    def _conflict(self, d: DesiredGroup, why: str) -> None:
        self.result.warnings.append(Warning(
            "name_conflict",
            f"source group {self.index.groups[d.pos].dn!r} maps to {d.name!r} "
            f"(organisation {d.organisation!r}), {why}; it is skipped"))

    def _place(self, desired: list[DesiredGroup]) -> dict[str, tuple[DesiredGroup, str]]:
        """Decide each desired group's store group: key -> (desired, store id or new:ID)."""
        by_target: dict[tuple[str, str], list[DesiredGroup]] = defaultdict(list)
        for d in desired:
            by_target[(d.organisation, d.name)].append(d)
        placed: dict[str, tuple[DesiredGroup, str]] = {}
        for target, claimants in by_target.items():
            holder = self.existing.by_name.get(target)
            if len(claimants) > 1:
                keep = [d for d in claimants if holder is not None and holder.managed
                        and holder.source == self.connector
                        and holder.external_id == d.external_id]
                others = ", ".join(repr(self.index.groups[d.pos].dn) for d in claimants)
                for d in claimants:
                    if d not in keep:
                        self._conflict(d, f"as do other source groups ({others})")
                if not keep:
                    continue
                d = keep[0]
            else:
                d = claimants[0]
            mine = self.existing.managed.get(d.external_id)
            if holder is None or holder is mine:
                placed[d.external_id] = (d, mine.id if mine else f"new:{d.external_id}")
            elif holder.managed and holder.source == self.connector:
                self._conflict(d, f"a name held by another group synced from "
                               f"{self.connector!r} ({holder.external_id})")
            elif holder.managed:
                self._conflict(d, f"a name held by a group synced from {holder.source!r}")
            elif d.rule.adopt_existing and mine is None:
                placed[d.external_id] = (d, holder.id)
            else:
                self._conflict(d, "a name held by a local group (set adopt_existing to take "
                               "it over)")
        return placed

    def _group_changes(self, d: DesiredGroup, key: str) -> None:
        attrs = {"description": d.description, "kind": d.kind, "organisation": d.organisation}
        if d.icon is not None:
            attrs["icon"] = d.icon
        if key.startswith("new:"):
            self.result.changes.append(CreateGroup(
                group=d.name, source=self.connector, external_id=d.external_id,
                rule=d.rule.name, attributes=attrs, key=key))
            return
        current = self.existing.groups[key]
        want: dict[str, object] = {"name": d.name, **attrs, "icon": d.icon}
        have = current.fields()
        fields = {k: {"old": have[k], "new": v} for k, v in want.items() if have[k] != v}
        if not current.managed:  # adopted
            fields.update({
                "managed": {"old": False, "new": True},
                "source": {"old": current.source, "new": self.connector},
                "external_id": {"old": current.external_id, "new": d.external_id},
            })
        if current.archived:
            fields["archived"] = {"old": True, "new": False}
        if current.rule != d.rule.name:
            fields["rule"] = {"old": current.rule, "new": d.rule.name}
        if fields:
            self.result.changes.append(UpdateGroup(
                group=current.name, source=self.connector, rule=d.rule.name, fields=fields,
                key=key))

    def _gone(self, g: StoreGroup) -> None:
        """A managed group no longer desired: its rule's on_source_delete decides."""
        rule = self.rules.get(g.rule or "")
        policy = rule.on_source_delete if rule else "delete"
        rule_name = g.rule or ""
        if policy == "delete":
            self.result.changes.append(DeleteGroup(group=g.name, source=self.connector,
                                                   rule=rule_name, key=g.id))
        elif policy == "archive" and not g.archived:
            self.result.changes.append(ArchiveGroup(group=g.name, source=self.connector,
                                                    rule=rule_name, key=g.id))

    # -- members ----------------------------------------------------------------------------

    def _user_change(self, pos: int, rule: Rule) -> str | None:
        """Make sure the user will exist; the membership status to give, None to skip."""
        su = self.index.users[pos]
        if su.user_name in self.existing.users:
            return "accepted"
        made = self._new_users.get(su.user_name)
        if made is not None:
            return "invited" if isinstance(made, InviteUser) else "accepted"
        policy = rule.members.unknown_users
        if policy == "skip" or su.disabled:
            return None
        cls = InviteUser if policy == "invite" else CreateUser
        change = cls(user=su.user_name, email=su.email, external=su.external,
                     source=self.connector, display_name=su.display_name,
                     external_id=su.external_id)
        self._new_users[su.user_name] = change
        self.result.changes.append(change)
        return "invited" if cls is InviteUser else "accepted"

    def _members(self, d: DesiredGroup, key: str, group_name: str,
                 existing: list[StoreMember]) -> None:
        rule = d.rule
        have = {m.user: m for m in existing}
        want = self.resolver.members(d)
        seen: set[str] = set()
        changes = self.result.changes
        for pos, role in want.items():
            su = self.index.users[pos]
            name = su.user_name
            disabled = su.disabled
            if name in seen or (disabled and rule.members.disabled_users == "remove"):
                continue
            seen.add(name)
            current = have.get(name)
            if current is not None:
                if not current.ours(self.connector):
                    continue  # a manual or foreign membership: never ours to change
                if current.role != role:
                    changes.append(ChangeRole(group=group_name, user=name, old=current.role,
                                              new=role, rule=rule.name, key=key))
                status = "deactivated" if disabled else (
                    "accepted" if current.status in ACTIVE_STATUSES_SYNC_RESTORES
                    else current.status)
                if current.status != status:
                    changes.append(SetMemberStatus(group=group_name, user=name,
                                                   old=current.status, new=status,
                                                   rule=rule.name, key=key))
                continue
            status_for_new = self._user_change(pos, rule)
            if status_for_new is None:
                continue
            changes.append(AddMember(group=group_name, user=name, role=role,
                                     status="deactivated" if disabled else status_for_new,
                                     rule=rule.name, key=key))
        for m in existing:
            if m.user not in seen and m.ours(self.connector):
                changes.append(RemoveMember(group=group_name, user=m.user, rule=rule.name,
                                            key=key))

    # -- the whole diff ---------------------------------------------------------------------

    def run(self, desired: list[DesiredGroup]) -> DiffResult:
        """Compute every change; reads the existing memberships stream to its end."""
        placed = self._place(desired)
        by_key = {key: d for d, key in placed.values()}
        skipped = {d.external_id for d in desired} - set(placed)
        for d, key in placed.values():
            self._group_changes(d, key)
        for g in self.existing.managed.values():
            self._by_rule_groups[g.rule or ""] += 1
            if g.external_id not in placed and g.external_id not in skipped:
                self._gone(g)
        dangling: list[tuple[str, list[str]]] = []
        visited: set[str] = set()
        managed_members = 0
        for group_id, members in self.existing.memberships():
            ours = sum(1 for m in members if m.ours(self.connector))
            managed_members += ours
            g = self.existing.groups[group_id]
            if g.managed and g.source == self.connector:
                self._by_rule_members[g.rule or ""] += ours
            wanted = by_key.get(group_id)
            if wanted is None:
                continue
            visited.add(group_id)
            self._members(wanted, group_id, self._group_name(group_id, wanted), members)
        for key, d in by_key.items():
            if key not in visited:
                self._members(d, key, self._group_name(key, d), [])
        for d in by_key.values():
            refs = self.resolver.dangling(d)
            if refs:
                dangling.append((d.name, refs))
        self.result.warnings.extend(summarise_dangling(dangling))
        self.result.managed_groups = len(self.existing.managed)
        self.result.managed_members = managed_members
        self.result.managed_by_rule = {
            r: (self._by_rule_groups.get(r, 0), self._by_rule_members.get(r, 0))
            for r in set(self._by_rule_groups) | set(self._by_rule_members)}
        return self.result

    def _group_name(self, key: str, d: DesiredGroup) -> str:
        """The name member changes carry: the group's name before this plan's rename."""
        g = self.existing.groups.get(key)
        return g.name if g is not None else d.name
