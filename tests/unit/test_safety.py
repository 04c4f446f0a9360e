"""The safety checks: default limits, percentages, the shrink guard, and which limits need
the count of every membership a connector manages."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.config.model import SafetyConfig
from syncd.config.rules import Rule
from syncd.plan import ConnectorPlan, DeleteGroup, RemoveMember, RemoveMemberWithGroup
from syncd.safety import check, member_share_limit


def rule(name: str, **safety: Any) -> Rule:
    return Rule.model_validate({"name": name, **({"safety": safety} if safety else {})})


@pytest.mark.parametrize(("global_limits", "rule_limits", "share"), [
    ({}, {}, False),
    ({"max_member_removals": 50}, {"max_member_removals": 3}, False),
    ({"max_group_deletes": "10%"}, {"max_group_deletes": "5%"}, False),  # groups: not members
    ({"max_member_removals": "25%"}, {}, True),
    ({"max_member_removals": 50}, {"max_member_removals": "0.5%"}, True),
])
def test_only_a_percentage_limit_on_member_removals_needs_the_counts(
        global_limits: dict[str, Any], rule_limits: dict[str, Any], share: bool) -> None:
    rules = [rule("plain"), rule("tuned", **rule_limits)]
    assert member_share_limit(SafetyConfig.model_validate(global_limits), rules) is share


# -- the checks themselves ------------------------------------------------------------------

def deletes(n: int, rule_name: str = "r") -> ConnectorPlan:
    """A plan deleting ``n`` of the ``n`` groups its connector manages."""
    cp = ConnectorPlan("corp", "full", managed_groups=n, groups_seen=n)
    cp.changes = [DeleteGroup(group=f"g{i}", source="corp", rule=rule_name, key=f"id{i}")
                  for i in range(n)]
    return cp


def removals(n: int, managed: int) -> ConnectorPlan:
    cp = ConnectorPlan("corp", "full", managed_members=managed)
    cp.changes = [RemoveMember(group="g", user=f"u{i}", rule="r", key="id")
                  for i in range(n)]
    return cp


def checks(cp: ConnectorPlan, safety: SafetyConfig | None = None,
           last: int | None = None) -> list[dict[str, Any]]:
    return [b.to_json() for b in check(cp, safety or SafetyConfig(), [rule("r")], last)]


def test_deletions_are_limited_when_the_safety_block_is_left_out() -> None:
    assert checks(deletes(25)) == []
    assert checks(deletes(26)) == [{"check": "max_group_deletes", "limit": 25, "planned": 26}]


def test_member_removals_are_limited_when_the_safety_block_is_left_out() -> None:
    assert checks(removals(500, managed=10_000)) == []
    assert checks(removals(501, managed=10_000)) == [
        {"check": "max_member_removals", "limit": 500, "planned": 501}]


def test_a_hundred_percent_turns_a_limit_off() -> None:
    off = SafetyConfig.model_validate({"max_group_deletes": "100%",
                                       "max_member_removals": "100%"})
    assert checks(deletes(1000), off) == []
    assert checks(removals(2000, managed=1000), off) == []
    assert member_share_limit(off, [rule("r")]) is False  # nothing to count for it


def test_the_memberships_of_a_deleted_group_count_as_its_deletion() -> None:
    cp = deletes(1)
    cp.changes += [RemoveMemberWithGroup(group="g0", user=f"u{i}", rule="r", key="id0",
                                         role="member", status="accepted", origin="manual")
                   for i in range(600)]
    assert checks(cp) == []
    cp.changes += removals(501, managed=10_000).changes
    cp.managed_members = 10_000
    assert checks(cp) == [{"check": "max_member_removals", "limit": 500, "planned": 501}]


def test_a_rule_override_still_wins_over_the_default() -> None:
    assert checks(deletes(30, "r")) != []
    tuned = Rule.model_validate({"name": "r", "safety": {"max_group_deletes": 40}})
    assert [b.to_json() for b in check(deletes(30), SafetyConfig(), [tuned], None)] == []


@pytest.mark.parametrize(("guard", "last", "seen", "floor"), [
    ("50%", 13, 6, 7),      # 6 of 13 is fewer than half
    ("50%", 13, 7, None),
    ("50%", 1, 0, 1),       # one group, then none
    ("50%", 2, 1, None),    # exactly half is not fewer than half
    ("50%", 3, 1, 2),
    ("33.3%", 3, 0, 1),
    ("33.3%", 3, 1, None),
    ("0%", 10, 0, None),    # off
    (5, 10, 4, 5),          # a count: at least that many groups
])
def test_the_shrink_guard_blocks_exactly_below_its_share(
        guard: int | str, last: int, seen: int, floor: int | None) -> None:
    cp = ConnectorPlan("corp", "full", groups_seen=seen)
    got = checks(cp, SafetyConfig.model_validate({"shrink_guard": guard}), last)
    if floor is None:
        assert got == []
    else:
        assert [{k: b[k] for k in ("check", "limit", "planned")} for b in got] == [
            {"check": "shrink_guard", "limit": floor, "planned": seen}]
