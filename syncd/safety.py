"""Safety checks on a connector's plan, before anything is applied (docs/safety.md)."""

from __future__ import annotations

from collections import Counter

from syncd.config.model import SafetyConfig
from syncd.config.rules import Rule
from syncd.config.types import limit_off, resolve_floor, resolve_limit
from syncd.plan import ArchiveGroup, Blocked, Change, ConnectorPlan, DeleteGroup, RemoveMember

DELETES: tuple[type[Change], ...] = (DeleteGroup, ArchiveGroup)
# The memberships that go with a deleted group (RemoveMemberWithGroup) are that group's
# deletion, counted by max_group_deletes: one group of 600 is one deletion, not 600.
REMOVALS: tuple[type[Change], ...] = (RemoveMember,)


def _limit_check(cp: ConnectorPlan, check: str, kinds: tuple[type[Change], ...],
                 global_limit: int | str | None, rules: dict[str, Rule], managed_total: int,
                 by_rule_index: int, counts: Counter[str]) -> list[Blocked]:
    if not any(counts.get(kind.op) for kind in kinds):
        return []  # nothing of the kind planned: no limit can trip
    per_rule: Counter[str] = Counter(
        getattr(c, "rule", "") for c in cp.changes if type(c) in kinds)
    out = []
    rest = 0
    for rule_name, planned in sorted(per_rule.items()):
        rule = rules.get(rule_name)
        override = getattr(rule.safety, check) if rule and rule.safety else None
        if override is None:
            rest += planned
            continue
        managed = cp.managed_by_rule.get(rule_name, (0, 0))[by_rule_index]
        limit = resolve_limit(override, managed)
        if limit is not None and planned > limit:
            out.append(Blocked(check, limit, planned, f"rule {rule_name!r}"))
    limit = resolve_limit(global_limit, managed_total)
    if limit is not None and rest > limit:
        out.append(Blocked(check, limit, rest))
    return out


def member_share_limit(safety: SafetyConfig, rules: list[Rule]) -> bool:
    """True when a limit on member removals, global or a rule's, is a percentage: the
    check then needs the count of every membership the connector manages."""
    limits = [safety.max_member_removals,
              *(r.safety.max_member_removals for r in rules if r.safety)]
    return any(isinstance(limit, str) and not limit_off(limit) for limit in limits)


def check(cp: ConnectorPlan, safety: SafetyConfig, rules: list[Rule],
          last_snapshot_groups: int | None) -> list[Blocked]:
    """Every tripped check of a connector's plan (empty when it may be applied)."""
    by_name = {r.name: r for r in rules}
    counts = cp.counts()
    out = _limit_check(cp, "max_group_deletes", DELETES, safety.max_group_deletes,
                       by_name, cp.managed_groups, 0, counts)
    out += _limit_check(cp, "max_member_removals", REMOVALS, safety.max_member_removals,
                        by_name, cp.managed_members, 1, counts)
    if last_snapshot_groups:
        floor = resolve_floor(safety.shrink_guard, last_snapshot_groups)
        if cp.groups_seen < floor:
            out.append(Blocked("shrink_guard", floor, cp.groups_seen,
                               f"the source returned {cp.groups_seen} groups, its last "
                               f"complete snapshot had {last_snapshot_groups}"))
    return out
