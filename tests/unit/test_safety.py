"""Which limits need the count of every membership a connector manages."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.config.model import SafetyConfig
from syncd.config.rules import Rule
from syncd.safety import member_share_limit


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
