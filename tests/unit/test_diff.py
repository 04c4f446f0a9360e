"""The diff (CONTRACT section 3): desired groups and members against an ExistingState read
from a real SQLite store. Rows are written straight into the store, so each test states
exactly what the store holds; ``apply`` runs the engine's Applier where a test needs the
store as a previous sync left it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from connectors.dn import normalise_dn
from syncd.apply import Applier
from syncd.audit import AuditWriter
from syncd.config.rules import Rule
from syncd.diff import Differ, DiffResult
from syncd.existing import SEP, ExistingState, MemberBlock
from syncd.index import SourceIndex
from syncd.mirror import Touched
from syncd.plan import Change, RemoveMemberWithGroup
from syncd.rules import Evaluator, MemberResolver, Warning, desired_groups, rules_for
from syncd.source import SourceGroup, SourceUser
from syncd.store.db import open_engine, upgrade
from syncd.store.schema import new_id, tables, utcnow

CONNECTOR = "corp"
PEOPLE = "ou=people,dc=example,dc=org"
GROUPS_OU = "ou=groups,dc=example,dc=org"

USERS = tables["users"]
GROUPS = tables["groups"]
MEMBERSHIPS = tables["memberships"]


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A store at head, once on SQLite and once on PostgreSQL."""
    engine = open_engine(store_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


# -- the source ----------------------------------------------------------------------------


def user_dn(name: str) -> str:
    return f"uid={name},{PEOPLE}"


def su(name: str, disabled: bool = False) -> SourceUser:
    return SourceUser(external_id=f"uid-{name}", ref=normalise_dn(user_dn(name)),
                      user_name=name, email=f"{name}@example.org", display_name=name.title(),
                      disabled=disabled)


def sg(name: str, members: Iterable[str] = (), *, ext: str | None = None,
       description: str = "", attributes: dict[str, list[str]] | None = None) -> SourceGroup:
    """A source group; ``members`` are user names (or ``cn=...`` group DNs)."""
    dn = f"cn={name},{GROUPS_OU}"
    refs = [normalise_dn(m if m.startswith("cn=") else user_dn(m)) for m in members]
    return SourceGroup(external_id=ext or f"gid-{name}", ref=normalise_dn(dn), dn=dn,
                       name=name, description=description,
                       attributes=dict(attributes or {}), members=refs)


def rule(name: str = "r", **kw: Any) -> Rule:
    return Rule.model_validate({"name": name, **kw})


def diff(engine: Engine, rules: list[Rule], users: list[SourceUser],
         groups: list[SourceGroup], touched: Touched | None = None, *,
         share_limits: bool = True) -> DiffResult:
    """Plan the source against the store, as the engine does for one connector (with
    ``touched``, as for a delta run)."""
    index = SourceIndex.build(users, groups)
    with engine.connect() as conn:
        existing = ExistingState(conn, CONNECTOR)
        applicable = rules_for(rules, CONNECTOR)
        wanted = list(desired_groups(applicable, CONNECTOR, Evaluator(index, normalise_dn)))
        resolver = MemberResolver(index, normalise_dn, [])
        result = Differ(CONNECTOR, index, applicable, resolver, existing).run(
            wanted, touched, share_limits=share_limits)
    for change in result.changes:  # the diff never plans a change twice
        assert result.changes.count(change) == 1, change
    return result


def apply(engine: Engine, rules: list[Rule], users: Callable[[], list[SourceUser]],
          groups: Callable[[], list[SourceGroup]]) -> list[Change]:
    """Diff and apply with the engine's Applier (a previous sync); return the changes."""
    index = SourceIndex.build(users(), groups())
    with engine.connect() as conn:
        existing = ExistingState(conn, CONNECTOR)
        applicable = rules_for(rules, CONNECTOR)
        wanted = list(desired_groups(applicable, CONNECTOR, Evaluator(index, normalise_dn)))
        resolver = MemberResolver(index, normalise_dn, [])
        changes = Differ(CONNECTOR, index, applicable, resolver, existing).run(wanted).changes
        changes.sort(key=Change.sort_key)
        Applier(conn, CONNECTOR, "run-1", AuditWriter(None), existing).apply(changes)
        conn.commit()
    return changes


def ops(result: DiffResult) -> list[tuple[str, ...]]:
    """The changes as sorted (op, group/user, user) tuples."""
    out = []
    for c in result.changes:
        out.append(tuple(str(v) for v in (c.op, getattr(c, "group", None),
                                          getattr(c, "user", None)) if v is not None))
    return sorted(out)


def codes(result: DiffResult) -> list[str]:
    return [w.code for w in result.warnings]


def one(result: DiffResult, op: str) -> dict[str, Any]:
    found = [c for c in result.changes if c.op == op]
    assert len(found) == 1, ops(result)
    return found[0].to_json(internal=True)


# -- the store -----------------------------------------------------------------------------


def add_user(engine: Engine, name: str) -> str:
    uid = new_id()
    with engine.begin() as conn:
        conn.execute(insert(USERS).values(id=uid, user_name=name, email=f"{name}@example.org",
                                          external=False, status="active",
                                          created_at=utcnow(), updated_at=utcnow()))
    return uid


def add_group(engine: Engine, name: str, *, managed: bool = False, source: str | None = None,
              ext: str | None = None, rule: str | None = None, description: str = "",
              archived: bool = False) -> str:
    gid = new_id()
    with engine.begin() as conn:
        conn.execute(insert(GROUPS).values(
            id=gid, name=name, description=description, kind="standard",
            organisation="default", managed=managed, source=source, external_id=ext,
            rule=rule, archived=archived, created_at=utcnow(), updated_at=utcnow()))
    return gid


def add_member(engine: Engine, gid: str, uid: str, *, role: str = "member",
               status: str = "accepted", origin: str = "manual", source: str | None = None,
               rule: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(insert(MEMBERSHIPS).values(
            group_id=gid, user_id=uid, role=role, status=status, origin=origin, source=source,
            rule=rule, created_at=utcnow(), updated_at=utcnow()))


def synced_group(engine: Engine, name: str, members: dict[str, str], *, rule: str = "r",
                 ext: str | None = None, **kw: Any) -> str:
    """A group a previous sync of ``corp`` made, with synced members (user -> role)."""
    gid = add_group(engine, name, managed=True, source=CONNECTOR, ext=ext or f"gid-{name}",
                    rule=rule, **kw)
    for user_name, role in members.items():
        uid = user_id(engine, user_name) or add_user(engine, user_name)
        add_member(engine, gid, uid, role=role, origin="sync", source=CONNECTOR, rule=rule)
    return gid


def user_id(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        found: str | None = conn.execute(
            select(USERS.c.id).where(USERS.c.user_name == name)).scalar()
    return found


def memberships(engine: Engine, group_name: str) -> dict[str, tuple[str, str, str]]:
    """user -> (role, status, origin) of a group's memberships."""
    m, u, g = MEMBERSHIPS.c, USERS.c, GROUPS.c
    with engine.connect() as conn:
        rows = conn.execute(select(u.user_name, m.role, m.status, m.origin)
                            .join(USERS, u.id == m.user_id).join(GROUPS, g.id == m.group_id)
                            .where(g.name == group_name))
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


# -- create and update -----------------------------------------------------------------------


def test_first_sync_creates_users_group_and_members(engine: Engine) -> None:
    r = rule("eng", group={"name": "eng-{name}", "kind": "open"},
             roles={"owner": {"attribute": "owner"}})
    result = diff(engine, [r], [su("alice"), su("bob")], [
        sg("platform", ["alice", "bob"], description="Platform",
           attributes={"owner": [user_dn("alice")]})])
    assert ops(result) == [("add_member", "eng-platform", "alice"),
                           ("add_member", "eng-platform", "bob"),
                           ("create_group", "eng-platform"),
                           ("create_user", "alice"), ("create_user", "bob")]
    assert one(result, "create_group") == {
        "op": "create_group", "group": "eng-platform", "source": CONNECTOR,
        "external_id": "gid-platform", "rule": "eng",
        "attributes": {"description": "Platform", "kind": "open", "organisation": "default"},
        "key": "new:gid-platform"}
    adds = {c.to_json()["user"]: c.to_json() for c in result.changes if c.op == "add_member"}
    assert adds["alice"] == {"op": "add_member", "group": "eng-platform", "user": "alice",
                             "role": "owner", "status": "accepted", "rule": "eng"}
    assert adds["bob"]["role"] == "member"
    created = [c.to_json(internal=True) for c in result.changes if c.op == "create_user"]
    assert created[0] == {"op": "create_user", "user": "alice", "email": "alice@example.org",
                          "external": False, "source": CONNECTOR, "display_name": "Alice",
                          "external_id": "uid-alice"}


def test_a_user_in_several_groups_is_created_once(engine: Engine) -> None:
    result = diff(engine, [rule()], [su("alice")], [sg("a", ["alice"]), sg("b", ["alice"])])
    assert ops(result).count(("create_user", "alice")) == 1
    assert ops(result).count(("add_member", "a", "alice")) == 1
    assert ops(result).count(("add_member", "b", "alice")) == 1


def test_applied_plan_leaves_nothing_to_do(engine: Engine) -> None:
    rules = [rule(roles={"owner": {"attribute": "owner"}})]

    def users() -> list[SourceUser]:
        return [su("alice"), su("bob")]

    def groups() -> list[SourceGroup]:
        return [sg("a", ["alice", "bob"], attributes={"owner": [user_dn("bob")]}),
                sg("b", ["bob"])]

    assert apply(engine, rules, users, groups)
    assert ops(diff(engine, rules, users(), groups())) == []
    assert memberships(engine, "a") == {"alice": ("member", "accepted", "sync"),
                                        "bob": ("owner", "accepted", "sync")}


def test_changed_description_is_an_update(engine: Engine) -> None:
    synced_group(engine, "platform", {}, description="old")
    result = diff(engine, [rule()], [], [sg("platform", description="new")])
    assert one(result, "update_group") == {
        "op": "update_group", "group": "platform", "source": CONNECTOR, "rule": "r",
        "fields": {"description": {"old": "old", "new": "new"}},
        "key": result.changes[0].key}  # type: ignore[attr-defined]
    assert ops(result) == [("update_group", "platform")]


def test_rename_is_an_update_of_the_same_group(engine: Engine) -> None:
    gid = synced_group(engine, "platform", {"alice": "member"})
    add_user(engine, "bob")
    result = diff(engine, [rule()], [su("alice"), su("bob")],
                  [sg("platform-team", ["alice", "bob"], ext="gid-platform")])
    update = one(result, "update_group")
    assert update["group"] == "platform"  # the name before the change
    assert update["fields"] == {"name": {"old": "platform", "new": "platform-team"}}
    assert update["key"] == gid
    # member changes carry the name before the change too, and the same group
    add = one(result, "add_member")
    assert (add["group"], add["user"], add["key"]) == ("platform", "bob", gid)
    assert ops(result) == [("add_member", "platform", "bob"), ("update_group", "platform")]


def test_rename_then_apply_keeps_the_group_id(engine: Engine) -> None:
    rules = [rule()]
    apply(engine, rules, lambda: [su("alice")], lambda: [sg("old", ["alice"], ext="g1")])
    with engine.connect() as conn:
        before = conn.execute(select(GROUPS.c.id).where(GROUPS.c.name == "old")).scalar()
    apply(engine, rules, lambda: [su("alice")], lambda: [sg("new", ["alice"], ext="g1")])
    with engine.connect() as conn:
        after = conn.execute(select(GROUPS.c.id).where(GROUPS.c.name == "new")).scalar()
        names = conn.execute(select(GROUPS.c.name)).scalars().all()
    assert before is not None
    assert after == before
    assert names == ["new"]
    assert memberships(engine, "new") == {"alice": ("member", "accepted", "sync")}


def test_rule_change_is_recorded_on_the_group(engine: Engine) -> None:
    synced_group(engine, "platform", {}, rule="old-rule")
    result = diff(engine, [rule("new-rule")], [], [sg("platform")])
    assert one(result, "update_group")["fields"] == {
        "rule": {"old": "old-rule", "new": "new-rule"}}


def test_role_change(engine: Engine) -> None:
    synced_group(engine, "platform", {"alice": "member", "bob": "owner"})
    r = rule(roles={"owner": {"attribute": "owner"}})
    result = diff(engine, [r], [su("alice"), su("bob")], [
        sg("platform", ["alice", "bob"], attributes={"owner": [user_dn("alice")]})])
    changes = sorted((c.to_json()["user"], c.to_json()["old"], c.to_json()["new"])
                     for c in result.changes if c.op == "change_role")
    assert changes == [("alice", "member", "owner"), ("bob", "owner", "member")]
    assert ops(result) == [("change_role", "platform", "alice"),
                           ("change_role", "platform", "bob")]


def test_member_gone_from_the_source_is_removed(engine: Engine) -> None:
    synced_group(engine, "platform", {"alice": "member", "bob": "member"})
    result = diff(engine, [rule()], [su("alice"), su("bob")], [sg("platform", ["alice"])])
    assert one(result, "remove_member") == {
        "op": "remove_member", "group": "platform", "user": "bob", "rule": "r",
        "key": result.changes[0].key}  # type: ignore[attr-defined]


# -- groups gone from the source or from scope --------------------------------------------


@pytest.mark.parametrize(("policy", "expected"), [
    # a deleted group's memberships go with it, each planned and audited
    ("delete", [("delete_group", "platform"), ("remove_member", "platform", "alice")]),
    ("archive", [("archive_group", "platform")]),
    ("keep", []),
])
def test_on_source_delete(engine: Engine, policy: str, expected: list[tuple[str, ...]]) -> None:
    synced_group(engine, "platform", {"alice": "member"}, rule="eng")
    synced_group(engine, "sales", {"alice": "member"}, rule="eng")
    r = rule("eng", on_source_delete=policy)
    result = diff(engine, [r], [su("alice")], [sg("sales", ["alice"])])
    assert ops(result) == expected
    if expected:
        c = next(c for c in result.changes if c.op == expected[0][0]).to_json()
        assert (c["source"], c["rule"]) == (CONNECTOR, "eng")


def test_archived_group_is_archived_once_and_restored_when_back(engine: Engine) -> None:
    synced_group(engine, "platform", {"alice": "member"}, archived=True)
    r = rule(on_source_delete="archive")
    assert ops(diff(engine, [r], [su("alice")], [])) == []
    back = diff(engine, [r], [su("alice")], [sg("platform", ["alice"])])
    assert one(back, "update_group")["fields"] == {"archived": {"old": True, "new": False}}
    assert ops(back) == [("update_group", "platform")]


def test_group_leaving_scope_is_gone_by_its_rules_policy(engine: Engine) -> None:
    synced_group(engine, "platform", {"alice": "member"}, rule="flagged")
    rules = [rule("flagged", when={"attribute": {"name": "businessCategory",
                                                 "equals": "sync"}},
                  on_source_delete="archive")]
    still = diff(engine, rules, [su("alice")], [
        sg("platform", ["alice"], attributes={"businesscategory": ["sync"]})])
    assert ops(still) == []
    left = diff(engine, rules, [su("alice")], [sg("platform", ["alice"])])  # flag removed
    assert ops(left) == [("archive_group", "platform")]


def test_group_skipped_by_a_rule_is_gone(engine: Engine) -> None:
    synced_group(engine, "Domain Admins", {"alice": "member"}, rule="all")
    rules = [rule("skip", when={"name": {"glob": "domain *"}}, action="skip"), rule("all")]
    result = diff(engine, rules, [su("alice")], [sg("Domain Admins", ["alice"])])
    assert ops(result) == [("delete_group", "Domain Admins"),
                           ("remove_member", "Domain Admins", "alice")]


def test_group_whose_rule_no_longer_exists_is_deleted(engine: Engine) -> None:
    synced_group(engine, "platform", {}, rule="removed-rule")
    result = diff(engine, [rule("other", when={"name": {"equals": "x"}},
                                on_source_delete="keep")], [], [sg("platform")])
    assert ops(result) == [("delete_group", "platform")]


# -- name conflicts --------------------------------------------------------------------------


def test_two_source_groups_to_one_name_are_both_skipped(engine: Engine) -> None:
    r = rule(group={"name": "team"})
    result = diff(engine, [r], [su("alice")], [sg("a", ["alice"]), sg("b", ["alice"])])
    assert ops(result) == []
    assert codes(result) == ["name_conflict", "name_conflict"]
    text = " ".join(w.message for w in result.warnings)
    assert f"cn=a,{GROUPS_OU}" in text
    assert f"cn=b,{GROUPS_OU}" in text


def test_two_source_groups_to_one_name_the_holder_keeps_it(engine: Engine) -> None:
    synced_group(engine, "team", {"alice": "member"}, ext="gid-a")
    r = rule(group={"name": "team"})
    result = diff(engine, [r], [su("alice"), su("bob")],
                  [sg("a", ["alice", "bob"]), sg("b", ["alice"])])
    assert ops(result) == [("add_member", "team", "bob"), ("create_user", "bob")]
    assert codes(result) == ["name_conflict"]
    assert f"cn=b,{GROUPS_OU}" in result.warnings[0].message


def test_conflicting_managed_group_is_not_deleted(engine: Engine) -> None:
    synced_group(engine, "team", {"alice": "member"}, ext="gid-a")
    synced_group(engine, "b", {"alice": "member"}, ext="gid-b")
    r = rule(group={"name": "team"})
    result = diff(engine, [r], [su("alice")], [sg("a", ["alice"]), sg("b", ["alice"])])
    # b now maps to a name held by a; it is skipped, not deleted and not renamed
    assert ops(result) == []
    assert codes(result) == ["name_conflict"]


def test_name_held_by_a_manual_group(engine: Engine) -> None:
    gid = add_group(engine, "platform")
    add_member(engine, gid, add_user(engine, "carol"))
    result = diff(engine, [rule()], [su("alice")], [sg("platform", ["alice"])])
    assert ops(result) == []
    assert codes(result) == ["name_conflict"]
    assert "adopt_existing" in result.warnings[0].message


def test_name_held_by_another_connectors_group(engine: Engine) -> None:
    add_group(engine, "platform", managed=True, source="entra", ext="gid-platform", rule="r")
    result = diff(engine, [rule(adopt_existing=True)], [su("alice")],
                  [sg("platform", ["alice"])])
    assert ops(result) == []
    assert codes(result) == ["name_conflict"]
    assert "'entra'" in result.warnings[0].message


def test_adopt_existing_takes_a_manual_group_over(engine: Engine) -> None:
    gid = add_group(engine, "platform", description="made by hand")
    carol, dave = add_user(engine, "carol"), add_user(engine, "dave")
    add_member(engine, gid, carol, role="owner")           # manual, not in the source
    add_member(engine, gid, dave, role="member")           # manual, and in the source
    r = rule("eng", adopt_existing=True, roles={"owner": {"attribute": "owner"}})

    def users() -> list[SourceUser]:
        return [su("alice"), su("dave")]

    def groups() -> list[SourceGroup]:
        return [sg("platform", ["alice", "dave"], description="Platform",
                   attributes={"owner": [user_dn("dave")]})]

    result = diff(engine, [r], users(), groups())
    update = one(result, "update_group")
    assert update["key"] == gid
    assert update["fields"] == {
        "description": {"old": "made by hand", "new": "Platform"},
        "managed": {"old": False, "new": True},
        "source": {"old": None, "new": CONNECTOR},
        "external_id": {"old": None, "new": "gid-platform"},
        "rule": {"old": None, "new": "eng"},
    }
    # carol and dave stay as they are (manual); only alice is added
    assert ops(result) == [("add_member", "platform", "alice"), ("create_user", "alice"),
                           ("update_group", "platform")]
    apply(engine, [r], users, groups)
    assert memberships(engine, "platform") == {
        "alice": ("member", "accepted", "sync"),
        "carol": ("owner", "accepted", "manual"),
        "dave": ("member", "accepted", "manual"),
    }
    with engine.connect() as conn:
        row = conn.execute(select(GROUPS).where(GROUPS.c.id == gid)).one()
    assert (row.managed, row.source, row.external_id, row.rule) == (True, CONNECTOR,
                                                                    "gid-platform", "eng")
    assert ops(diff(engine, [r], users(), groups())) == []


# -- ownership of memberships ---------------------------------------------------------------


def test_manual_memberships_are_never_touched(engine: Engine) -> None:
    gid = synced_group(engine, "platform", {"alice": "member"})
    add_member(engine, gid, add_user(engine, "bob"), role="owner")   # not in the source
    add_member(engine, gid, add_user(engine, "carol"), role="owner",
               status="deactivated")                                  # in it, as a member
    r = rule(members={"disabled_users": "remove"})
    result = diff(engine, [r], [su("alice"), su("carol")], [sg("platform", ["alice", "carol"])])
    assert ops(result) == []
    result = diff(engine, [r], [su("alice"), su("carol", disabled=True)], [
        sg("platform", ["alice", "carol"])])
    assert ops(result) == []
    result = diff(engine, [r], [], [])
    # the group is ours: when it goes, every membership goes with it, each one planned
    assert ops(result) == [("delete_group", "platform"), ("remove_member", "platform", "alice"),
                           ("remove_member", "platform", "bob"),
                           ("remove_member", "platform", "carol")]
    origins = {c.user: c.origin for c in result.changes  # type: ignore[attr-defined]
               if isinstance(c, RemoveMemberWithGroup)}
    assert origins == {"alice": "sync", "bob": "manual", "carol": "manual"}


def test_memberships_of_another_connector_are_untouched(engine: Engine) -> None:
    gid = synced_group(engine, "platform", {"alice": "member"})
    add_member(engine, gid, add_user(engine, "bob"), origin="sync", source="entra",
               rule="cloud")
    add_member(engine, gid, add_user(engine, "carol"), role="owner", origin="sync",
               source="entra", rule="cloud")
    r = rule(roles={"owner": {"attribute": "owner"}})
    result = diff(engine, [r], [su("alice"), su("carol")], [
        sg("platform", ["alice", "carol"], attributes={"owner": [user_dn("alice")]})])
    # bob is not in our source but is entra's; carol is entra's with another role
    assert ops(result) == [("change_role", "platform", "alice")]


def test_groups_of_another_connector_are_not_ours_to_delete(engine: Engine) -> None:
    add_group(engine, "cloud", managed=True, source="entra", ext="x", rule="r")
    add_group(engine, "manual")
    assert ops(diff(engine, [rule()], [], [])) == []


def test_counts_of_what_the_connector_manages(engine: Engine) -> None:
    gid = synced_group(engine, "a", {"alice": "member", "bob": "member"})
    synced_group(engine, "b", {"alice": "member"}, rule="other")
    add_member(engine, gid, add_user(engine, "carol"))  # manual: not managed
    other = add_group(engine, "c", managed=True, source="entra", ext="c", rule="r")
    add_member(engine, other, add_user(engine, "dave"), origin="sync", source="entra")
    result = diff(engine, [rule(), rule("other")], [], [])
    assert (result.managed_groups, result.managed_members) == (2, 3)
    assert result.managed_by_rule == {"r": (1, 2), "other": (1, 1)}


# -- users -----------------------------------------------------------------------------------


def test_unknown_users_create(engine: Engine) -> None:
    result = diff(engine, [rule(members={"unknown_users": "create"})], [su("alice")],
                  [sg("g", ["alice"])])
    assert one(result, "create_user")["user"] == "alice"
    assert one(result, "add_member")["status"] == "accepted"


def test_unknown_users_invite(engine: Engine) -> None:
    result = diff(engine, [rule(members={"unknown_users": "invite"})], [su("alice")],
                  [sg("g", ["alice"])])
    invite = one(result, "invite_user")
    assert (invite["user"], invite["email"]) == ("alice", "alice@example.org")
    assert one(result, "add_member")["status"] == "invited"
    assert "create_user" not in [c.op for c in result.changes]


def test_unknown_users_skip(engine: Engine) -> None:
    add_user(engine, "bob")
    result = diff(engine, [rule(members={"unknown_users": "skip"})], [su("alice"), su("bob")],
                  [sg("g", ["alice", "bob"])])
    # alice is unknown to the store: left out; bob exists: added
    assert ops(result) == [("add_member", "g", "bob"), ("create_group", "g")]


def test_invited_membership_keeps_its_status(engine: Engine) -> None:
    r = rule(members={"unknown_users": "invite"})
    apply(engine, [r], lambda: [su("alice")], lambda: [sg("g", ["alice"])])
    assert memberships(engine, "g") == {"alice": ("member", "invited", "sync")}
    assert ops(diff(engine, [r], [su("alice")], [sg("g", ["alice"])])) == []


def test_disabled_user_is_deactivated(engine: Engine) -> None:
    synced_group(engine, "g", {"alice": "member"})
    add_user(engine, "bob")
    r = rule(members={"disabled_users": "deactivate"})
    result = diff(engine, [r], [su("alice", disabled=True), su("bob", disabled=True),
                                su("carol", disabled=True)],
                  [sg("g", ["alice", "bob", "carol"])])
    status = one(result, "set_member_status")
    assert (status["user"], status["old"], status["new"]) == ("alice", "accepted",
                                                              "deactivated")
    add = one(result, "add_member")  # bob is known to the store: added, deactivated
    assert (add["user"], add["status"]) == ("bob", "deactivated")
    # carol is unknown and disabled: no user is created for her
    assert ops(result) == [("add_member", "g", "bob"), ("set_member_status", "g", "alice")]


def test_disabled_user_is_removed(engine: Engine) -> None:
    synced_group(engine, "g", {"alice": "member", "bob": "member"})
    r = rule(members={"disabled_users": "remove"})
    result = diff(engine, [r], [su("alice", disabled=True), su("bob")], [sg("g", ["alice",
                                                                                  "bob"])])
    assert ops(result) == [("remove_member", "g", "alice")]


def test_reenabled_user_is_reactivated(engine: Engine) -> None:
    gid = synced_group(engine, "g", {})
    add_member(engine, gid, add_user(engine, "alice"), status="deactivated", origin="sync",
               source=CONNECTOR, rule="r")
    result = diff(engine, [rule()], [su("alice")], [sg("g", ["alice"])])
    status = one(result, "set_member_status")
    assert (status["user"], status["old"], status["new"]) == ("alice", "deactivated",
                                                              "accepted")
    assert ops(result) == [("set_member_status", "g", "alice")]


def test_deactivate_then_reactivate_round_trip(engine: Engine) -> None:
    r = rule()
    apply(engine, [r], lambda: [su("alice")], lambda: [sg("g", ["alice"])])
    apply(engine, [r], lambda: [su("alice", disabled=True)], lambda: [sg("g", ["alice"])])
    assert memberships(engine, "g") == {"alice": ("member", "deactivated", "sync")}
    assert ops(diff(engine, [r], [su("alice", disabled=True)], [sg("g", ["alice"])])) == []
    apply(engine, [r], lambda: [su("alice")], lambda: [sg("g", ["alice"])])
    assert memberships(engine, "g") == {"alice": ("member", "accepted", "sync")}


def test_nested_members_and_dangling_references(engine: Engine) -> None:
    r = rule(members={"nested": "flatten"})
    result = diff(engine, [r], [su("alice"), su("bob")], [
        sg("inner", ["bob"]),
        sg("outer", ["alice", f"cn=inner,{GROUPS_OU}", "ghost"]),
    ])
    assert ("add_member", "outer", "bob") in ops(result)
    assert codes(result) == ["dangling_member"]
    assert "uid=ghost" in result.warnings[0].message


# -- names passed on within one run ---------------------------------------------------------


def nobody() -> list[SourceUser]:
    return []


def group_names(engine: Engine) -> dict[str, str]:
    """external id -> name of the groups sync made."""
    with engine.connect() as conn:
        rows = conn.execute(select(GROUPS.c.external_id, GROUPS.c.name).where(GROUPS.c.managed))
        return {r[0]: r[1] for r in rows}


def test_a_name_freed_by_a_deleted_group_is_taken_in_the_same_run(engine: Engine) -> None:
    rules = [rule()]
    apply(engine, rules, lambda: [su("alice")], lambda: [sg("team", ["alice"], ext="old")])
    # the directory group was deleted and made again: a new id under the same name
    result = diff(engine, rules, [su("alice")], [sg("team", ["alice"], ext="new")])
    assert codes(result) == []
    assert ops(result) == [("add_member", "team", "alice"), ("create_group", "team"),
                           ("delete_group", "team"), ("remove_member", "team", "alice")]
    changes = apply(engine, rules, lambda: [su("alice")],
                    lambda: [sg("team", ["alice"], ext="new")])
    assert [c.op for c in changes] == ["remove_member", "delete_group", "create_group",
                                       "add_member"]
    assert group_names(engine) == {"new": "team"}
    assert ops(diff(engine, rules, [su("alice")], [sg("team", ["alice"], ext="new")])) == []


def test_a_name_held_by_an_archived_group_stays_a_conflict(engine: Engine) -> None:
    rules = [rule(on_source_delete="archive")]
    apply(engine, rules, nobody, lambda: [sg("team", ext="old")])
    result = diff(engine, rules, [], [sg("team", ext="new")])
    assert ops(result) == [("archive_group", "team")]
    assert codes(result) == ["name_conflict"]


@pytest.mark.parametrize("second", [
    {"a": "y", "b": "z"},   # a chain: b gives up y for z, a takes y
    {"a": "y", "b": "x"},   # a swap
], ids=["chain", "swap"])
def test_renames_pass_names_on_in_one_run(engine: Engine, second: dict[str, str]) -> None:
    rules = [rule()]
    apply(engine, rules, nobody, lambda: [sg("x", ext="a"), sg("y", ext="b")])
    source = [sg(name, ext=ext) for ext, name in second.items()]
    result = diff(engine, rules, [], source)
    assert codes(result) == []
    assert sorted(c.to_json()["fields"]["name"]["new"] for c in result.changes) == sorted(
        second.values())
    apply(engine, rules, nobody, lambda: [sg(name, ext=ext) for ext, name in second.items()])
    assert group_names(engine) == second
    assert ops(diff(engine, rules, [], [sg(name, ext=ext) for ext, name in second.items()])) == []


def test_a_rename_onto_a_name_its_holder_keeps_is_a_conflict(engine: Engine) -> None:
    rules = [rule()]
    apply(engine, rules, nobody, lambda: [sg("x", ext="a"), sg("y", ext="b")])
    add_group(engine, "z")  # a local group
    # b would move on to z, but z is held by a local group: b keeps y, so a keeps x
    result = diff(engine, rules, [], [sg("y", ext="a"), sg("z", ext="b")])
    assert ops(result) == []
    assert codes(result) == ["name_conflict", "name_conflict"]
    messages = " ".join(w.message for w in result.warnings)
    assert "local group" in messages
    assert "(b)" in messages


def test_unknown_user_skipped_by_one_rule_and_created_by_another(engine: Engine) -> None:
    rules = [rule("strict", when={"name": {"equals": "first"}},
                  members={"unknown_users": "skip"}),
             rule("open", members={"unknown_users": "create"})]
    # the strict group comes first: whether alice is added must not hang on that order
    for groups in ([sg("first", ["alice"]), sg("second", ["alice"])],
                   [sg("second", ["alice"]), sg("first", ["alice"])]):
        result = diff(engine, rules, [su("alice")], groups)
        assert ops(result) == [("add_member", "first", "alice"),
                               ("add_member", "second", "alice"), ("create_group", "first"),
                               ("create_group", "second"), ("create_user", "alice")]
        adds = [c.to_json() for c in result.changes if c.op == "add_member"]
        assert {a["status"] for a in adds} == {"accepted"}


def test_unknown_user_skipped_by_one_rule_and_invited_by_another(engine: Engine) -> None:
    rules = [rule("strict", when={"name": {"equals": "first"}},
                  members={"unknown_users": "skip"}),
             rule("partners", members={"unknown_users": "invite"})]
    result = diff(engine, rules, [su("alice")], [sg("first", ["alice"]),
                                                 sg("second", ["alice"])])
    adds = sorted((c.to_json()["group"], c.to_json()["status"])
                  for c in result.changes if c.op == "add_member")
    assert adds == [("first", "invited"), ("second", "invited")]


def test_unknown_user_invited_by_one_rule_and_created_by_another(engine: Engine) -> None:
    rules = [rule("partners", when={"name": {"equals": "partners"}},
                  members={"unknown_users": "invite"}),
             rule("staff", members={"unknown_users": "create"})]
    # whichever group comes first, alice is created (a rule creates her) and her
    # memberships are accepted, as they would be had she been in the store already
    for groups in ([sg("partners", ["alice"]), sg("staff", ["alice"])],
                   [sg("staff", ["alice"]), sg("partners", ["alice"])]):
        result = diff(engine, rules, [su("alice")], groups)
        assert one(result, "create_user")["user"] == "alice"
        assert "invite_user" not in [c.op for c in result.changes]
        statuses = {c.to_json()["group"]: c.to_json()["status"]
                    for c in result.changes if c.op == "add_member"}
        assert statuses == {"partners": "accepted", "staff": "accepted"}


def test_user_renamed_in_the_source_becomes_a_new_user(engine: Engine) -> None:
    r = rule()
    apply(engine, [r], lambda: [su("alice")], lambda: [sg("g", ["alice"])])

    def renamed() -> SourceUser:  # same external id, new user name
        user = su("alice")
        user.user_name = "alice.smith"
        user.ref = normalise_dn(user_dn("alice.smith"))
        return user

    changes = apply(engine, [r], lambda: [renamed()], lambda: [sg("g", ["alice.smith"])])
    assert sorted((c.op, getattr(c, "user", None)) for c in changes) == [
        ("add_member", "alice.smith"), ("create_user", "alice.smith"),
        ("remove_member", "alice")]
    assert memberships(engine, "g") == {"alice.smith": ("member", "accepted", "sync")}
    ids = tables["user_external_ids"]
    with engine.connect() as conn:
        owners = conn.execute(
            select(USERS.c.user_name).join(ids, ids.c.user_id == USERS.c.id)
            .where(ids.c.external_id == "uid-alice")).scalars().all()
    assert owners == ["alice.smith"]
    assert ops(diff(engine, [r], [renamed()], [sg("g", ["alice.smith"])])) == []


def test_two_new_users_with_one_external_id_in_different_batches(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty store holds no user's external id, and a first sync runs no delete for
    them; but a source that gives two users one id still gets it moved to the later one,
    as it would in a store that held ids, not a failed apply."""
    monkeypatch.setattr("syncd.apply.BATCH", 1)  # one user a batch
    twin = su("bob")
    twin.external_id = "uid-alice"
    apply(engine, [rule()], lambda: [su("alice"), twin], lambda: [sg("g", ["alice", "bob"])])
    assert memberships(engine, "g") == {"alice": ("member", "accepted", "sync"),
                                        "bob": ("member", "accepted", "sync")}
    ids = tables["user_external_ids"]
    with engine.connect() as conn:
        owners = conn.execute(
            select(USERS.c.user_name).join(ids, ids.c.user_id == USERS.c.id)
            .where(ids.c.external_id == "uid-alice")).scalars().all()
    assert owners == ["bob"]  # users are created by name: bob's batch comes second


def test_a_name_template_rendering_empty_skips_the_group_with_a_warning() -> None:
    index = SourceIndex.build(
        [su("alice")],
        [sg("with", ["alice"], attributes={"departmentnumber": ["42"]}), sg("without")])
    warnings: list[Warning] = []
    r = rule(group={"name": "{attr[departmentNumber]}"})
    wanted = list(desired_groups([r], CONNECTOR, Evaluator(index, normalise_dn), warnings))
    assert [d.name for d in wanted] == ["42"]
    assert [w.code for w in warnings] == ["empty_name"]
    assert "cn=without" in warnings[0].message


def test_owner_values_that_resolve_to_nothing_are_reported(engine: Engine) -> None:
    owners = {"owner": [user_dn("alice"), user_dn("ghost"), "not a dn"]}
    r = rule(roles={"owner": {"attribute": "owner"}})
    result = diff(engine, [r], [su("alice")], [sg("g", ["alice"], attributes=owners)])
    assert one(result, "add_member")["role"] == "owner"
    (warning,) = [w for w in result.warnings if w.code == "dangling_role"]
    assert "group 'g': 2 role value(s)" in warning.message
    assert "uid=ghost" in warning.message


# -- groups without rows: every member an add -----------------------------------------------


@pytest.mark.parametrize("members", [
    pytest.param({"disabled_users": "deactivate", "unknown_users": "create"}, id="create"),
    pytest.param({"disabled_users": "remove", "unknown_users": "invite"}, id="invite-remove"),
    pytest.param({"disabled_users": "deactivate", "unknown_users": "skip"}, id="skip"),
])
@pytest.mark.parametrize("stored", [(), ("alice", "bob", "carol", "dave"), ("alice", "dave")],
                         ids=["none-stored", "all-stored", "some-stored"])
def test_groups_without_rows_plan_what_the_member_loop_plans(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, members: dict[str, str],
        stored: tuple[str, ...]) -> None:
    """``Differ._all_added`` (new groups, and store groups with no rows) plans the same
    changes, in the same order, as the member-by-member loop it stands in for."""
    for name in stored:
        add_user(engine, name)
    synced_group(engine, "empty", {})  # in the store, no rows
    rules = [rule(members=members, roles={"owner": {"attribute": "owner"}})]

    def plan() -> list[dict[str, Any]]:
        twin = SourceUser(external_id="uid-alice-2", ref=normalise_dn(user_dn("alice2")),
                          user_name="alice", email="a2@example.org")  # a second "alice"
        users = [su("alice"), su("bob", disabled=True), su("carol"),
                 su("dave", disabled=True), twin]
        groups = [sg("empty", ["carol", "bob", "alice"]),
                  sg("new", ["dave", "alice", "carol"],
                     attributes={"owner": [user_dn("carol")]}),
                  sg("twins", ["alice", "alice2", "bob"]), sg("nobody", []),
                  sg("alices", ["alice"]), sg("carols", ["carol", "bob"])]
        return [c.to_json(internal=True) for c in diff(engine, rules, users, groups).changes]

    calls: list[bool] = []
    fast = Differ._all_added

    def counted(self: Differ, *args: Any) -> bool:
        calls.append(fast(self, *args))
        return calls[-1]

    monkeypatch.setattr(Differ, "_all_added", counted)
    with_fast = plan()
    assert True in calls  # the fast path planned some groups
    if stored == ("alice", "dave"):
        assert False in calls  # users in the store and not: left to the loop
    monkeypatch.setattr(Differ, "_all_added", lambda *_: False)
    assert with_fast == plan()
    assert ("add_member" in {c["op"] for c in with_fast}) == (
        bool(stored) or members["unknown_users"] != "skip")


# -- the fast check of unchanged groups ----------------------------------------------------


def unchanged_per_member(uid_of: list[str | None], disabled: set[str], want: dict[int, str],
                         existing: list[tuple[str, str, str, str, bool]],
                         remove_disabled: bool) -> bool:
    """The check written plainly, member by member: what the fast version must agree with."""
    kept = [(uid_of[pos], role) for pos, role in want.items() if uid_of[pos] != ""]
    desired = dict(kept)
    if len(desired) != len(kept) or len(existing) != len(desired) or None in desired:
        return False
    if remove_disabled and not disabled.isdisjoint(desired):
        return False
    return all(ours and desired.get(uid) == role
               and (status == "deactivated" if uid in disabled else status != "deactivated")
               for _gid, uid, role, status, ours in existing)


@st.composite
def group_states(draw: st.DrawFn) -> tuple[Any, ...]:
    ids = ["u1", "u2", "u3", "u4"]
    uid_of = draw(st.lists(st.sampled_from([*ids, *ids, None, ""]), min_size=1, max_size=6))
    disabled = draw(st.sets(st.sampled_from(ids)))
    roles = st.sampled_from(["member", "owner"])
    want = draw(st.dictionaries(st.integers(0, len(uid_of) - 1), roles, min_size=1))
    rows = draw(st.dictionaries(st.sampled_from(ids), st.tuples(
        roles, st.sampled_from(["accepted", "deactivated", "invited"]), st.booleans())))
    if draw(st.booleans()):  # often the rows the group wants, exactly or but for one thing
        rows = {u: (r, "deactivated" if u in disabled else "accepted", True)
                for pos, r in want.items() if (u := uid_of[pos])}
        if rows and draw(st.booleans()):
            uid = draw(st.sampled_from(sorted(rows)))
            role, status, ours = rows[uid]
            rows[uid] = draw(st.sampled_from([
                ("facilitator", status, ours),
                (role, "invited", ours),
                (role, "accepted" if status == "deactivated" else "deactivated", ours),
                (role, status, False)]))
        if len(rows) > 1 and draw(st.booleans()):  # two rows trade statuses
            a = draw(st.sampled_from(sorted(disabled.intersection(rows)) or sorted(rows)))
            b = draw(st.sampled_from(sorted(set(rows) - disabled - {a})
                                     or sorted(set(rows) - {a})))
            rows[a], rows[b] = (rows[a][0], rows[b][1], rows[a][2]), (
                rows[b][0], rows[a][1], rows[b][2])
    existing = [("g", uid, *rows[uid]) for uid in sorted(rows)]
    return uid_of, disabled, want, existing, draw(st.booleans())


@settings(max_examples=500, deadline=None)
@given(state=group_states())
# a disabled member accepted and an enabled one deactivated: the counts agree, the rows not
@example(state=(["u1", "u2"], {"u1"}, {0: "member", 1: "member"},
                [("g", "u1", "member", "accepted", True),
                 ("g", "u2", "member", "deactivated", True)], False))
def test_the_fast_check_agrees_with_the_plain_one(state: tuple[Any, ...]) -> None:
    uid_of, disabled, want, existing, remove_disabled = state
    differ = SimpleNamespace(_uid_of=uid_of, _disabled_uids=disabled, _unknown_pos={
        pos for pos, uid in enumerate(uid_of) if uid is None})
    block = MemberBlock.of_rows("g", existing)
    assert block.rows() == existing
    assert Differ._unchanged(differ, want, block, remove_disabled) == (
        unchanged_per_member(uid_of, disabled, want, existing, remove_disabled))


# -- a delta run's reach ------------------------------------------------------------------


def test_a_delta_compares_only_the_groups_it_reaches(engine: Engine) -> None:
    # The store drifted by hand in "quiet" (a synced member removed), which a delta that
    # does not reach it leaves to the next full run; "loud" holds a user the delta
    # disabled, and "outer" nests it.
    synced_group(engine, "quiet", {"ann": "member", "ben": "member"})
    synced_group(engine, "loud", {"cat": "member"})
    synced_group(engine, "outer", {"cat": "member", "dan": "member"})
    with engine.begin() as conn:
        conn.execute(MEMBERSHIPS.delete().where(
            MEMBERSHIPS.c.user_id == user_id(engine, "ben")))
    users = [su("ann"), su("ben"), su("cat", disabled=True), su("dan")]

    def groups() -> list[SourceGroup]:  # fresh ones each time: the index takes their lists
        return [sg("quiet", ["ann", "ben"]), sg("loud", ["cat"]),
                sg("outer", ["dan", f"cn=loud,{GROUPS_OU}"])]

    rules = [rule("r")]
    touched = Touched(users={"uid-cat"}, groups=set(), removed_users=set(),
                      removed_groups=set())
    delta = diff(engine, rules, users, groups(), touched)
    assert ops(delta) == [("set_member_status", "loud", "cat"),
                          ("set_member_status", "outer", "cat")]
    # no member removal planned: the memberships of groups it did not read are not counted
    assert not delta.members_counted
    full = diff(engine, rules, users, groups())
    assert ops(full) == [("add_member", "quiet", "ben"), *ops(delta)]
    assert full.members_counted
    assert (full.managed_members, full.managed_by_rule) == (4, {"r": (3, 4)})
    # a removal: percentages are of everything the connector manages, read or not
    emptied = [*groups()[:1], sg("loud", []), *groups()[2:]]
    removal = diff(engine, rules, users, emptied, Touched(
        users=set(), groups={"gid-loud"}, removed_users=set(), removed_groups=set()))
    assert ops(removal) == [("remove_member", "loud", "cat"), ("remove_member", "outer", "cat")]
    assert removal.members_counted
    assert (removal.managed_members, removal.managed_by_rule) == (4, {"r": (3, 4)})
    # no percentage limit on member removals: the same plan, nothing counted
    uncounted = diff(engine, rules, users, [*groups()[:1], sg("loud", []), *groups()[2:]],
                     Touched(users=set(), groups={"gid-loud"}, removed_users=set(),
                             removed_groups=set()), share_limits=False)
    assert ops(uncounted) == ops(removal)
    assert not uncounted.members_counted
    assert uncounted.managed_members < removal.managed_members


# -- membership rows read per group ---------------------------------------------------------


def test_member_blocks_hold_the_rows_memberships_gives(engine: Engine) -> None:
    gid = synced_group(engine, "g", {"ann": "member", "ben": "owner", "cat": "facilitator"})
    other = synced_group(engine, "h", {"ann": "owner"})
    dan, eve = add_user(engine, "dan"), add_user(engine, "eve")
    add_member(engine, gid, dan, role="helper", status="invited")  # manual
    # a value holding the blocks' separator: that group is read row by row
    add_member(engine, other, eve, role=f"odd{SEP}role", status="pending")
    with engine.connect() as conn:
        state = ExistingState(conn, CONNECTOR)
        rows = {group_id: sorted(members) for group_id, members in state.memberships()}
        blocks = {b.group_id: sorted(b.rows()) for b in state.member_blocks()}
        ours = {b.group_id: b.ours for b in state.member_blocks()}
    assert blocks == rows
    assert [r[1:] for r in rows[gid] if r[1] == dan] == [(dan, "helper", "invited", False)]
    assert len(rows[gid]) == 4 and len(rows[other]) == 2
    assert ours == {gid: 3, other: 1}


# -- names the store would refuse -------------------------------------------------------------


# (the rules trim what a template renders: blanks at either end never reach the store)
@pytest.mark.parametrize("name", ["two\nlines", "x" * 201, "tab\tinside",
                                  "line\u2028separator"])
def test_a_group_whose_name_the_store_refuses_is_skipped_with_a_warning(
        engine: Engine, name: str) -> None:
    result = diff(engine, [rule()], [su("alice")], [sg(name, ["alice"]), sg("fine", ["alice"])])
    assert ops(result) == [("add_member", "fine", "alice"), ("create_group", "fine"),
                           ("create_user", "alice")]
    assert codes(result) == ["invalid_name"]
    assert "it is skipped" in result.warnings[0].message


def test_a_synced_group_renamed_to_a_refused_name_is_kept(engine: Engine) -> None:
    synced_group(engine, "platform", {"alice": "member"}, ext="gid-platform")
    result = diff(engine, [rule()], [su("alice")], [sg("plat\rform", ["alice"],
                                                       ext="gid-platform")])
    assert ops(result) == []  # neither renamed nor deleted
    assert codes(result) == ["invalid_name"]


def test_a_rule_naming_a_refused_organisation_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"organisation 'a\\tb' contains a control character"):
        rule(group={"organisation": "a\tb"})


def test_a_user_whose_name_the_store_refuses_is_not_created(engine: Engine) -> None:
    bad = SourceUser(external_id="uid-bad", ref=normalise_dn(user_dn("bad")),
                     user_name="bad\nname", email="bad@example.org", display_name=None)
    users = [su("alice"), bad]
    result = diff(engine, [rule()], users, [sg("team", ["alice", "bad"])])
    assert ops(result) == [("add_member", "team", "alice"), ("create_group", "team"),
                           ("create_user", "alice")]
    assert codes(result) == ["invalid_user_name"]
    assert "'bad\\nname'" in result.warnings[0].message


def test_an_email_or_display_name_the_store_cannot_hold_is_left_out(engine: Engine) -> None:
    long_mail = SourceUser(external_id="uid-m", ref=normalise_dn(user_dn("m")), user_name="m",
                           email="m" * 320 + "@example.org", display_name="Em\x07")
    result = diff(engine, [rule()], [long_mail], [sg("team", ["m"])])
    created = one(result, "create_user")
    assert (created["email"], created["display_name"]) == (None, None)
    assert codes(result) == ["invalid_user_attribute"]
