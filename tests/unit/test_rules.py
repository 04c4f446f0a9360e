"""Rules over a source index (CONTRACT section 3): conditions, first match, templates, roles,
nesting, ``explain`` and the attributes a connector must fetch. No I/O: the index is built
directly from SourceUser and SourceGroup objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from connectors.dn import normalise_dn
from syncd.config.rules import Condition, Rule
from syncd.index import SourceIndex
from syncd.rules import (
    DesiredGroup,
    Evaluator,
    MemberResolver,
    Warning,
    decide,
    desired_groups,
    explain,
    needed_attributes,
    render,
    rules_for,
    summarise_dangling,
)
from syncd.source import SourceGroup, SourceUser

BASE = "dc=example,dc=org"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
ENG = f"ou=engineering,{GROUPS}"
CONNECTOR = "corp"


# -- building blocks ----------------------------------------------------------------------


def user_dn(name: str) -> str:
    return f"uid={name},{PEOPLE}"


def user(name: str, disabled: bool = False) -> SourceUser:
    dn = user_dn(name)
    return SourceUser(external_id=f"id-{name}", ref=normalise_dn(dn), user_name=name,
                      email=f"{name}@example.org", disabled=disabled)


def group(name: str, *, ou: str = GROUPS, members: Iterable[str] = (),
          description: str = "", attributes: dict[str, list[str]] | None = None,
          dn: str | None = None) -> SourceGroup:
    """A source group; ``members`` are DNs (normalised as a connector would give them)."""
    dn = dn or f"cn={name},{ou}"
    return SourceGroup(external_id=f"gid-{name}", ref=normalise_dn(dn), dn=dn, name=name,
                       description=description, attributes=dict(attributes or {}),
                       members=[normalise_dn(m) for m in members])


def gdn(name: str, ou: str = GROUPS) -> str:
    return f"cn={name},{ou}"


def index_of(users: Iterable[SourceUser], groups: Iterable[SourceGroup]) -> SourceIndex:
    return SourceIndex.build(list(users), list(groups))


def rule(name: str = "r", **kw: Any) -> Rule:
    return Rule.model_validate({"name": name, **kw})


def cond(data: dict[str, Any]) -> Condition:
    return Condition.model_validate(data)


def evaluator(index: SourceIndex) -> Evaluator:
    return Evaluator(index, normalise_dn)


def pos_of(index: SourceIndex, name: str) -> int:
    pos = index.find_group(name)
    assert pos is not None, name
    return pos


def holds(index: SourceIndex, group_name: str, condition: dict[str, Any]) -> bool:
    """Whether ``condition`` holds for the named group; a failure must give a reason."""
    why = evaluator(index).check(cond(condition), pos_of(index, group_name))
    assert why is None or why.strip(), "a failed condition says why"
    return why is None


def desired(rules: list[Rule], index: SourceIndex) -> dict[str, DesiredGroup]:
    """Desired groups by source group name."""
    out = {}
    for d in desired_groups(rules, CONNECTOR, evaluator(index)):
        out[index.groups[d.pos].name] = d
    return out


def members_by_name(index: SourceIndex, d: DesiredGroup,
                    resolver: MemberResolver | None = None) -> dict[str, str]:
    resolver = resolver or MemberResolver(index, normalise_dn, [])
    return {index.users[u].user_name: role for u, role in resolver.members(d).items()}


# -- conditions: name -----------------------------------------------------------------------


@pytest.fixture
def named() -> SourceIndex:
    return index_of([user("alice")], [
        group("Platform-Team", members=[user_dn("alice")]),
        group("sales"),
    ])


def test_name_equals_is_case_insensitive(named: SourceIndex) -> None:
    assert holds(named, "Platform-Team", {"name": {"equals": "platform-team"}})
    assert holds(named, "Platform-Team", {"name": {"equals": "PLATFORM-TEAM"}})
    assert not holds(named, "Platform-Team", {"name": {"equals": "platform"}})


def test_name_in_is_case_insensitive(named: SourceIndex) -> None:
    assert holds(named, "sales", {"name": {"in": ["Marketing", "SALES"]}})
    assert not holds(named, "sales", {"name": {"in": ["marketing", "sale"]}})


def test_name_glob_matches_the_whole_name_case_insensitively(named: SourceIndex) -> None:
    assert holds(named, "Platform-Team", {"name": {"glob": "platform-*"}})
    assert holds(named, "Platform-Team", {"name": {"glob": "*-TEAM"}})
    assert not holds(named, "Platform-Team", {"name": {"glob": "platform"}})
    assert not holds(named, "sales", {"name": {"glob": "s?le"}})


def test_name_regex_searches_the_name(named: SourceIndex) -> None:
    assert holds(named, "Platform-Team", {"name": {"regex": "-Team$"}})
    assert holds(named, "Platform-Team", {"name": {"regex": "form"}})  # a search, not a match
    assert not holds(named, "Platform-Team", {"name": {"regex": "^Team"}})


def test_several_tests_in_one_match_must_all_hold(named: SourceIndex) -> None:
    assert holds(named, "Platform-Team", {"name": {"glob": "platform*", "regex": "Team"}})
    assert not holds(named, "Platform-Team", {"name": {"glob": "platform*", "regex": "^x"}})


# -- conditions: dn -------------------------------------------------------------------------


@pytest.fixture
def dns() -> SourceIndex:
    return index_of([], [
        group("platform", ou=ENG),
        group("sub", ou=f"ou=backend,{ENG}"),
        group("lookalike", ou=f"ou=sub-engineering,{GROUPS}"),
        # a DN written with other case and spacing, as some directories return them
        group("odd", dn="CN=odd, OU=Engineering ,OU=Groups, DC=Example,DC=ORG"),
    ])


def test_dn_under_ignores_case_and_spacing(dns: SourceIndex) -> None:
    under = {"dn": {"under": "OU=Engineering, ou=GROUPS,dc=example, DC=org"}}
    assert holds(dns, "platform", under)
    assert holds(dns, "sub", under)
    assert holds(dns, "odd", under)
    assert holds(dns, "odd", {"dn": {"under": ENG}})
    assert not holds(dns, "lookalike", under)


def test_dn_under_includes_the_base_itself(dns: SourceIndex) -> None:
    assert holds(dns, "platform", {"dn": {"under": gdn("platform", ENG)}})
    assert not holds(dns, "platform", {"dn": {"under": f"ou=backend,{ENG}"}})


def test_dn_equals_and_in_compare_normalised_dns(dns: SourceIndex) -> None:
    assert holds(dns, "odd", {"dn": {"equals": f"cn=ODD,{ENG}"}})
    assert holds(dns, "platform", {"dn": {"equals": "cn=Platform, OU=engineering,"
                                                    "ou=groups,dc=example,dc=org"}})
    assert not holds(dns, "platform", {"dn": {"equals": ENG}})
    assert holds(dns, "sub", {"dn": {"in": [gdn("x"), f"CN=Sub,OU=Backend,{ENG}"]}})
    assert not holds(dns, "sub", {"dn": {"in": [gdn("sub")]}})


def test_dn_glob_and_regex(dns: SourceIndex) -> None:
    assert holds(dns, "platform", {"dn": {"glob": "cn=*,OU=ENGINEERING,*"}})
    assert not holds(dns, "lookalike", {"dn": {"glob": "cn=*,ou=engineering,*"}})
    assert holds(dns, "sub", {"dn": {"regex": r"ou=backend,"}})
    assert not holds(dns, "platform", {"dn": {"regex": r"ou=backend,"}})


def test_dn_under_together_with_another_test(dns: SourceIndex) -> None:
    both = {"dn": {"under": ENG, "glob": "cn=p*"}}
    assert holds(dns, "platform", both)
    assert not holds(dns, "sub", both)


# -- conditions: attribute ------------------------------------------------------------------


@pytest.fixture
def attrs() -> SourceIndex:
    return index_of([], [
        group("a", attributes={"businesscategory": ["Other", "SYNC"]}),
        group("b", attributes={"businesscategory": ["other"]}),
        group("c"),
    ])


def test_attribute_equals_any_value_case_insensitive(attrs: SourceIndex) -> None:
    sync = {"attribute": {"name": "businessCategory", "equals": "sync"}}
    assert holds(attrs, "a", sync)
    assert not holds(attrs, "b", sync)
    assert not holds(attrs, "c", sync)


def test_attribute_name_is_case_insensitive(attrs: SourceIndex) -> None:
    assert holds(attrs, "a", {"attribute": {"name": "BUSINESSCATEGORY", "equals": "sync"}})


def test_attribute_in_glob_regex(attrs: SourceIndex) -> None:
    assert holds(attrs, "b", {"attribute": {"name": "businessCategory",
                                            "in": ["OTHER", "x"]}})
    assert holds(attrs, "a", {"attribute": {"name": "businessCategory", "glob": "sy*"}})
    assert not holds(attrs, "b", {"attribute": {"name": "businessCategory", "glob": "sy*"}})
    assert holds(attrs, "a", {"attribute": {"name": "businessCategory", "regex": "^SY"}})
    assert not holds(attrs, "c", {"attribute": {"name": "businessCategory", "regex": ".*"}})


def test_attribute_present(attrs: SourceIndex) -> None:
    present = {"attribute": {"name": "businessCategory", "present": True}}
    absent = {"attribute": {"name": "businessCategory", "present": False}}
    assert holds(attrs, "a", present)
    assert not holds(attrs, "c", present)
    assert holds(attrs, "c", absent)
    assert not holds(attrs, "b", absent)


# -- conditions: members --------------------------------------------------------------------


def test_members_counts_direct_references_that_resolve() -> None:
    index = index_of([user("alice"), user("bob")], [
        group("inner", members=[user_dn("bob")]),
        # alice, a nested group (one reference) and a dangling reference
        group("outer", members=[user_dn("alice"), gdn("inner"), user_dn("ghost")]),
        group("empty", members=[user_dn("ghost")]),
    ])
    assert index.direct_count(pos_of(index, "outer")) == 2
    assert holds(index, "outer", {"members": {"min": 2}})
    assert not holds(index, "outer", {"members": {"min": 3}})
    assert holds(index, "outer", {"members": {"max": 2}})
    assert not holds(index, "outer", {"members": {"max": 1}})
    assert holds(index, "inner", {"members": {"min": 1, "max": 1}})
    assert not holds(index, "empty", {"members": {"min": 1}})
    assert holds(index, "empty", {"members": {"max": 0}})


# -- combinations ---------------------------------------------------------------------------


@pytest.fixture
def combo() -> SourceIndex:
    return index_of([], [
        group("eng-a", ou=ENG, attributes={"businesscategory": ["sync"]}),
        group("eng-b", ou=ENG),
        group("sales-a", attributes={"businesscategory": ["sync"]}),
    ])


def test_all_needs_every_condition(combo: SourceIndex) -> None:
    c = {"all": [{"dn": {"under": ENG}},
                 {"attribute": {"name": "businessCategory", "equals": "sync"}}]}
    assert holds(combo, "eng-a", c)
    assert not holds(combo, "eng-b", c)
    assert not holds(combo, "sales-a", c)


def test_any_needs_one_condition(combo: SourceIndex) -> None:
    c = {"any": [{"dn": {"under": ENG}}, {"name": {"glob": "sales-*"}}]}
    assert holds(combo, "eng-b", c)
    assert holds(combo, "sales-a", c)
    none = {"any": [{"name": {"equals": "x"}}, {"name": {"equals": "y"}}]}
    assert not holds(combo, "eng-a", none)


def test_not_negates(combo: SourceIndex) -> None:
    c = {"not": {"dn": {"under": ENG}}}
    assert holds(combo, "sales-a", c)
    assert not holds(combo, "eng-a", c)


def test_several_keys_in_one_mapping_must_all_hold(combo: SourceIndex) -> None:
    c = {"dn": {"under": ENG}, "name": {"glob": "*-a"}}
    assert holds(combo, "eng-a", c)
    assert not holds(combo, "eng-b", c)
    assert not holds(combo, "sales-a", c)


def test_nested_combinations(combo: SourceIndex) -> None:
    c = {"all": [{"any": [{"name": {"equals": "eng-b"}}, {"name": {"equals": "sales-a"}}]},
                 {"not": {"attribute": {"name": "businessCategory", "present": True}}}]}
    assert holds(combo, "eng-b", c)
    assert not holds(combo, "sales-a", c)
    assert not holds(combo, "eng-a", c)


# -- first match, skip, scope ---------------------------------------------------------------


@pytest.fixture
def scoped() -> SourceIndex:
    return index_of([user("alice")], [
        group("Domain Admins", ou=f"ou=builtin,{GROUPS}", members=[user_dn("alice")]),
        group("platform", ou=ENG, members=[user_dn("alice")]),
        group("sales", members=[user_dn("alice")]),
        group("misc", members=[user_dn("alice")]),
    ])


def test_first_matching_rule_decides(scoped: SourceIndex) -> None:
    rules = [
        rule("eng", when={"dn": {"under": ENG}}, group={"name": "eng-{name}"}),
        rule("all", group={"name": "all-{name}"}),
    ]
    got = desired(rules, scoped)
    assert got["platform"].rule.name == "eng"
    assert got["platform"].name == "eng-platform"
    assert got["sales"].rule.name == "all"
    assert got["sales"].name == "all-sales"


def test_skip_rule_takes_a_group_out_even_when_a_later_rule_matches(
        scoped: SourceIndex) -> None:
    rules = [
        rule("skip-builtin", when={"name": {"regex": "^(Domain|Enterprise) "}}, action="skip"),
        rule("all"),
    ]
    got = desired(rules, scoped)
    assert set(got) == {"platform", "sales", "misc"}
    ev = evaluator(scoped)
    decided = decide(rules_for(rules, CONNECTOR), ev, pos_of(scoped, "Domain Admins"))
    assert decided is not None
    assert decided.name == "skip-builtin"


def test_a_group_no_rule_matches_is_out_of_scope(scoped: SourceIndex) -> None:
    rules = [rule("only-sales", when={"name": {"equals": "sales"}})]
    assert set(desired(rules, scoped)) == {"sales"}
    assert decide(rules, evaluator(scoped), pos_of(scoped, "misc")) is None


def test_rules_of_another_source_do_not_apply(scoped: SourceIndex) -> None:
    rules = [rule("other", source="entra", group={"name": "x-{name}"}),
             rule("mine", source=CONNECTOR, when={"name": {"equals": "sales"}}),
             rule("any", source="*", when={"name": {"equals": "misc"}})]
    assert [r.name for r in rules_for(rules, CONNECTOR)] == ["mine", "any"]
    got = desired(rules_for(rules, CONNECTOR), scoped)
    assert {n: d.rule.name for n, d in got.items()} == {"sales": "mine", "misc": "any"}


def test_defaults_of_a_rule(scoped: SourceIndex) -> None:
    got = desired([rule("all")], scoped)["sales"]
    assert (got.name, got.kind, got.organisation, got.icon) == ("sales", "standard",
                                                               "default", None)
    r = got.rule
    assert (r.source, r.action, r.on_source_delete, r.adopt_existing) == ("*", "sync",
                                                                          "delete", False)
    assert (r.members.nested, r.members.unknown_users, r.members.disabled_users) == (
        "flatten", "create", "deactivate")
    assert r.roles == {}


# -- templates ------------------------------------------------------------------------------


def test_templates_fill_every_field() -> None:
    g = group("platform", ou=ENG, description="The platform team",
              attributes={"businesscategory": ["sync", "other"], "l": ["London"]})
    assert render("eng-{name}", g) == "eng-platform"
    assert render("{description} ({attr[l]})", g) == "The platform team (London)"
    assert render("{attr[businessCategory]}", g) == "sync"  # the first value, any case
    assert render("{id}", g) == "gid-platform"
    assert render("{dn}", g) == f"cn=platform,{ENG}"
    assert render("x{attr[missing]}", g) == "x"
    assert render("  {name}  ", g) == "platform"


def test_desired_group_uses_the_rule_templates() -> None:
    index = index_of([], [group("platform", ou=ENG, description="Platform",
                                attributes={"l": ["London"]})])
    r = rule("eng", group={"name": "{attr[l]}-{name}", "description": "{description}!",
                           "kind": "open", "organisation": "acme", "icon": "icons/{name}"})
    d = desired([r], index)["platform"]
    assert (d.name, d.description, d.kind, d.organisation, d.icon) == (
        "London-platform", "Platform!", "open", "acme", "icons/platform")


def test_unknown_template_fields_are_refused_when_the_rule_is_made() -> None:
    with pytest.raises(ValueError, match="unknown template field"):
        rule("bad", group={"name": "{cn}"})


# -- roles ----------------------------------------------------------------------------------


@pytest.fixture
def team() -> SourceIndex:
    users = [user(n) for n in ("alice", "bob", "carol", "dave", "erin")]
    return index_of(users, [
        group("leads", ou=ENG, members=[user_dn("carol"), user_dn("dave")]),
        group("admins", members=[user_dn("erin")]),
        group("platform", ou=ENG, members=[user_dn("alice"), user_dn("bob"),
                                           user_dn("carol")],
              attributes={"owner": ["UID=Alice, OU=People,DC=Example,DC=Org",
                                    gdn("admins")]}),
    ])


def test_owner_from_a_dn_attribute(team: SourceIndex) -> None:
    r = rule("eng", roles={"owner": {"attribute": "owner"}})
    got = members_by_name(team, desired([r], team)["platform"])
    # alice by a differently spelled DN; erin through the group the attribute names
    assert got == {"alice": "owner", "bob": "member", "carol": "member", "erin": "owner"}


def test_facilitator_from_another_groups_members(team: SourceIndex) -> None:
    r = rule("eng", roles={"facilitator": {"group": f"CN=Leads,{ENG}"}})
    got = members_by_name(team, desired([r], team)["platform"])
    # dave holds the role without being a member: he becomes one
    assert got == {"alice": "member", "bob": "member", "carol": "facilitator",
                   "dave": "facilitator"}


def test_role_group_by_name(team: SourceIndex) -> None:
    r = rule("eng", roles={"facilitator": {"group": "leads"}})
    got = members_by_name(team, desired([r], team)["platform"])
    assert got["carol"] == "facilitator"
    assert got["dave"] == "facilitator"


def test_earlier_roles_take_precedence() -> None:
    # alice owns the group and is a lead too: the role listed first in the rule wins
    index = index_of([user(n) for n in ("alice", "bob", "carol")], [
        group("leads", members=[user_dn("alice"), user_dn("carol")]),
        group("platform", members=[user_dn("alice"), user_dn("bob")],
              attributes={"owner": [user_dn("alice")]}),
    ])
    owner_first = rule("r", roles={"owner": {"attribute": "owner"},
                                   "facilitator": {"group": "leads"}})
    facilitator_first = rule("r", roles={"facilitator": {"group": "leads"},
                                         "owner": {"attribute": "owner"}})
    got = members_by_name(index, desired([owner_first], index)["platform"])
    assert got == {"alice": "owner", "bob": "member", "carol": "facilitator"}
    got = members_by_name(index, desired([facilitator_first], index)["platform"])
    assert got == {"alice": "facilitator", "bob": "member", "carol": "facilitator"}


def test_missing_role_group_is_a_warning_once(team: SourceIndex) -> None:
    r = rule("eng", roles={"facilitator": {"group": f"cn=nobody,{GROUPS}"}})
    warnings: list[Warning] = []
    resolver = MemberResolver(team, normalise_dn, warnings)
    ds = desired([r], team)
    for d in ds.values():
        members_by_name(team, d, resolver)
    codes = [w.code for w in warnings]
    assert codes == ["role_group_missing"]
    assert "cn=nobody" in warnings[0].message
    assert members_by_name(team, ds["platform"]) == {"alice": "member", "bob": "member",
                                                     "carol": "member"}


def test_an_owner_dn_that_resolves_to_nothing_gives_no_role(team: SourceIndex) -> None:
    index = index_of([user("alice")], [
        group("g", members=[user_dn("alice")],
              attributes={"owner": [user_dn("ghost"), "not a dn"]})])
    r = rule("r", roles={"owner": {"attribute": "owner"}})
    assert members_by_name(index, desired([r], index)["g"]) == {"alice": "member"}


# -- nesting --------------------------------------------------------------------------------


@pytest.fixture
def nested() -> SourceIndex:
    users = [user(n) for n in ("alice", "bob", "carol")]
    return index_of(users, [
        group("deep", members=[user_dn("carol")]),
        group("inner", members=[user_dn("bob"), gdn("deep")]),
        group("outer", members=[user_dn("alice"), gdn("inner")]),
    ])


def test_flatten_takes_members_of_nested_groups_at_any_depth(nested: SourceIndex) -> None:
    r = rule("r", members={"nested": "flatten"})
    got = members_by_name(nested, desired([r], nested)["outer"])
    assert got == {"alice": "member", "bob": "member", "carol": "member"}


def test_ignore_takes_direct_user_members_only(nested: SourceIndex) -> None:
    r = rule("r", members={"nested": "ignore"})
    got = members_by_name(nested, desired([r], nested)["outer"])
    assert got == {"alice": "member"}


def test_role_group_follows_the_rules_nesting(nested: SourceIndex) -> None:
    flat = rule("r", members={"nested": "flatten"}, roles={"owner": {"group": "inner"}})
    direct = rule("r", members={"nested": "ignore"}, roles={"owner": {"group": "inner"}})
    assert members_by_name(nested, desired([flat], nested)["outer"]) == {
        "alice": "member", "bob": "owner", "carol": "owner"}
    assert members_by_name(nested, desired([direct], nested)["outer"]) == {
        "alice": "member", "bob": "owner"}


def test_a_nesting_cycle_is_reported_once_and_members_counted_once() -> None:
    users = [user(n) for n in ("alice", "bob", "carol")]
    index = index_of(users, [
        group("board", members=[user_dn("alice"), gdn("reviewers")]),
        group("reviewers", members=[user_dn("bob"), gdn("board")]),
        group("all", members=[user_dn("carol"), gdn("board")]),
    ])
    warnings: list[Warning] = []
    resolver = MemberResolver(index, normalise_dn, warnings)
    got = {name: members_by_name(index, d, resolver)
           for name, d in desired([rule("r")], index).items()}
    assert got["board"] == {"alice": "member", "bob": "member"}
    assert got["reviewers"] == {"alice": "member", "bob": "member"}
    assert got["all"] == {"alice": "member", "bob": "member", "carol": "member"}
    cycles = resolver.cycle_warnings(desired([rule("r")], index).values())
    assert [w.code for w in cycles] == ["nesting_cycle"]
    assert "board" in cycles[0].message
    assert "reviewers" in cycles[0].message


def test_no_cycle_warning_when_nesting_is_ignored() -> None:
    index = index_of([user("alice")], [
        group("a", members=[user_dn("alice"), gdn("b")]),
        group("b", members=[gdn("a")]),
    ])
    resolver = MemberResolver(index, normalise_dn, [])
    wanted = desired([rule("r", members={"nested": "ignore"})], index)
    for d in wanted.values():
        resolver.members(d)
    assert resolver.cycle_warnings(wanted.values()) == []
    flattened = desired([rule("r")], index)
    assert [w.code for w in resolver.cycle_warnings(flattened.values())] == ["nesting_cycle"]


def test_cycles_are_the_same_whichever_group_is_looked_at_first() -> None:
    index = index_of([user("alice")], [
        group("a", members=[gdn("b")]), group("b", members=[gdn("c"), gdn("a")]),
        group("c", members=[gdn("a")]), group("self", members=[gdn("self")]),
        group("top", members=[gdn("a"), user_dn("alice")]),
        group("x", members=[gdn("y")]), group("y", members=[gdn("x")]),  # not reached
    ])
    pos = {g.name: i for i, g in enumerate(index.groups)}
    expected = sorted([[pos["a"], pos["b"]], [pos["self"]]])
    for starts in ([pos["top"], pos["self"]], [pos["self"], pos["c"]],
                   [pos["b"], pos["self"], pos["top"]]):
        assert sorted(index.nesting_cycles(starts)) == expected
    assert index.nesting_cycles([pos["x"]]) == [[pos["x"], pos["y"]]]
    assert index.nesting_cycles([]) == []


def test_dangling_members_are_listed_and_summarised() -> None:
    index = index_of([user("alice")], [
        group("g", members=[user_dn("alice"), user_dn("ghost"), user_dn("phantom")])])
    resolver = MemberResolver(index, normalise_dn, [])
    d = desired([rule("r")], index)["g"]
    refs = resolver.dangling(d)
    assert sorted(refs) == [normalise_dn(user_dn("ghost")), normalise_dn(user_dn("phantom"))]
    (w,) = summarise_dangling([("g", refs)])
    assert w.code == "dangling_member"
    assert "2 member reference(s)" in w.message
    many = summarise_dangling([(f"g{i}", ["x"]) for i in range(3)], limit=2)
    assert [w.code for w in many] == ["dangling_member"] * 3
    assert "3 member reference(s) resolve to nothing in 3 groups" in many[-1].message


# -- explain --------------------------------------------------------------------------------


def test_explain_gives_why_each_earlier_rule_failed() -> None:
    index = index_of([user("alice")], [
        group("platform", ou=ENG, members=[user_dn("alice")],
              attributes={"businesscategory": ["internal"]})])
    rules = [
        rule("entra-only", source="entra"),
        rule("skip-builtin", when={"name": {"regex": "^Domain "}}, action="skip"),
        rule("eng", when={"all": [{"dn": {"under": ENG}},
                                  {"attribute": {"name": "businessCategory",
                                                 "equals": "sync"}}]}),
        rule("big", when={"members": {"min": 5}}),
        rule("either", when={"any": [{"name": {"equals": "x"}}, {"name": {"glob": "y*"}}]}),
        rule("not-eng", when={"not": {"dn": {"under": ENG}}}),
        rule("catch-all"),
        rule("never-reached"),
    ]
    decisions = explain(rules, CONNECTOR, evaluator(index), pos_of(index, "platform"))
    by_rule = {d.rule: d for d in decisions}
    assert [d.rule for d in decisions] == [r.name for r in rules[:-1]]
    assert [d.matched for d in decisions] == [False] * 6 + [True]
    assert by_rule["entra-only"].reason == "source is 'entra', not 'corp'"
    assert by_rule["skip-builtin"].reason == (
        "name 'platform' does not match regex '^Domain '")
    eng = by_rule["eng"].reason or ""
    assert "attribute businessCategory ['internal']" in eng
    assert "equals 'sync'" in eng
    assert by_rule["big"].reason == "members: 1 direct members, not within min 5 max None"
    either = by_rule["either"].reason or ""
    assert either.startswith("none of 'any' matched: ")
    assert "equals 'x'" in either
    assert "glob 'y*'" in either
    assert by_rule["not-eng"].reason == "the 'not' condition matched"
    assert by_rule["catch-all"].reason is None


def test_explain_names_the_dn_test_that_failed() -> None:
    index = index_of([], [group("sales")])
    rules = [rule("eng", when={"dn": {"under": ENG}})]
    (d,) = explain(rules, CONNECTOR, evaluator(index), 0)
    assert not d.matched
    assert d.reason == f"dn 'cn=sales,{GROUPS}' does not match under '{ENG}'"


# -- needed attributes ----------------------------------------------------------------------


def test_needed_attributes_collects_every_attribute_rules_read() -> None:
    rules = [
        rule("a", when={"all": [{"attribute": {"name": "businessCategory", "equals": "x"}},
                                {"any": [{"attribute": {"name": "L", "present": True}},
                                         {"not": {"attribute": {"name": "ou",
                                                                "glob": "*"}}}]}]},
             group={"name": "{attr[departmentNumber]}-{name}",
                    "description": "{attr[Info]}", "icon": "{attr[jpegPhotoUrl]}"},
             roles={"owner": {"attribute": "Owner"}, "facilitator": {"group": "leads"}}),
        rule("b", when={"name": {"equals": "x"}}),
    ]
    assert needed_attributes(rules) == frozenset({
        "businesscategory", "l", "ou", "departmentnumber", "info", "jpegphotourl", "owner"})


def test_needed_attributes_of_plain_rules_is_empty() -> None:
    assert needed_attributes([rule("a", when={"name": {"glob": "*"}}), rule("b")]) == (
        frozenset())
