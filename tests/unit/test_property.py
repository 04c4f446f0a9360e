"""Properties of the whole engine (STYLE: "for any source and store state, apply(plan) makes
the next plan empty"), over random source snapshots and random store states.

Each example starts from an SQLite store holding manual groups and memberships and rows of
another connector, syncs a first snapshot, adds manual and foreign memberships to the groups
that sync made, then syncs a second snapshot. After each real run:

- a second plan of the same snapshot is empty;
- every manual or foreign row (groups and memberships) is unchanged, byte for byte (a group
  taken over with ``adopt_existing`` is the one exception, and memberships inside a group
  that sync itself deleted go with it);
- the run's audit records equal its applied changes one for one (op, group, user).

The source is an in-test connector registered in place of the installed ones.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, insert, select

import syncd.engine
from syncd.audit import AuditWriter, records
from syncd.config.model import BaseConfig, SafetyConfig
from syncd.config.rules import Rule
from syncd.connector import Connector, ConnectorConfig
from syncd.engine import RunOptions, RunResult, SyncEngine
from syncd.source import Delta, Snapshot, SourceGroup, SourceUser
from syncd.store.db import open_engine, upgrade
from syncd.store.schema import new_id, tables, utcnow

CONNECTOR = "mem"
OTHER = "other"

USERS = tables["users"]
GROUPS = tables["groups"]
MEMBERSHIPS = tables["memberships"]

USER_NAMES = ["ann", "ben", "cat", "dan", "eve", "fay"]
GROUP_IDS = [f"g{i}" for i in range(6)]
GROUP_NAMES = ["red", "blue", "gold", "lead"]
# the names the rules can give: manual and foreign groups are drawn from them, to collide
STORE_GROUP_NAMES = [*GROUP_NAMES, *(f"b-{n}" for n in GROUP_NAMES)]
ORGANISATIONS = ["default", "other-org"]
ROLES = ["member", "owner", "facilitator"]
STATUSES = ["accepted", "invited", "deactivated", "pending"]


# -- the in-test connector ----------------------------------------------------------------


class MemoryConfig(ConnectorConfig):
    """A connector whose source is a snapshot held by the test."""

    type: Literal["memory"]


@dataclass(frozen=True)
class UserSpec:
    name: str
    disabled: bool


@dataclass(frozen=True)
class GroupSpec:
    ext: str
    name: str
    category: str | None
    description: str
    members: tuple[str, ...]
    owners: tuple[str, ...]


@dataclass(frozen=True)
class SourceSpec:
    users: tuple[UserSpec, ...]
    groups: tuple[GroupSpec, ...]


def user_ref(name: str) -> str:
    return f"user:{name}"


def group_ref(ext: str) -> str:
    return f"group:{ext}"


class MemoryConnector(Connector):
    """Gives ``MemoryConnector.source`` as a fresh snapshot each time it is asked."""

    type_name = "memory"
    config_model: ClassVar[type[ConnectorConfig]] = MemoryConfig
    source: ClassVar[SourceSpec] = SourceSpec((), ())

    # set by the delta test: a cursor with each snapshot, and deltas against ``previous``
    supports_delta: ClassVar[bool] = False
    previous: ClassVar[SourceSpec] = SourceSpec((), ())

    def snapshot(self) -> Snapshot:
        users, groups = self.build(type(self).source)
        return Snapshot(users=users, groups=groups,
                        cursor={"seq": 1} if self.supports_delta else None)

    def delta(self, cursor: dict[str, Any]) -> Delta | None:
        """The entries of ``source`` that differ from ``previous``, and those it lacks."""
        old_users, old_groups = self.build(type(self).previous)
        users, groups = self.build(type(self).source)
        before_u = {u.external_id: u for u in old_users}
        before_g = {g.external_id: g for g in old_groups}
        return Delta(users=[u for u in users if before_u.get(u.external_id) != u],
                     groups=[g for g in groups if before_g.get(g.external_id) != g],
                     removed_users=sorted(set(before_u) - {u.external_id for u in users}),
                     removed_groups=sorted(set(before_g) - {g.external_id for g in groups}),
                     cursor={"seq": cursor["seq"] + 1})

    @staticmethod
    def build(spec: SourceSpec) -> tuple[list[SourceUser], list[SourceGroup]]:
        users = [SourceUser(external_id=f"uid-{u.name}", ref=user_ref(u.name),
                            user_name=u.name, email=f"{u.name}@example.org",
                            display_name=u.name.title(), disabled=u.disabled)
                 for u in spec.users]
        groups = [SourceGroup(external_id=g.ext, ref=group_ref(g.ext), dn=f"cn={g.name},{g.ext}",
                              name=g.name, description=g.description,
                              attributes={k: list(v) for k, v in (
                                  ("category", [g.category] if g.category else []),
                                  ("owner", list(g.owners))) if v},
                              members=list(g.members))
                  for g in spec.groups]
        return users, groups


# -- strategies ---------------------------------------------------------------------------


REFS = [*(user_ref(n) for n in USER_NAMES), *(group_ref(g) for g in GROUP_IDS)]


@st.composite
def sources(draw: st.DrawFn, tidy: bool = False) -> SourceSpec:
    """A snapshot; ``tidy`` ones have most groups in scope and no refs to users or groups
    outside the snapshot (the delta test: such a ref makes its group compared always)."""
    names = draw(st.lists(st.sampled_from(USER_NAMES), unique=True, max_size=len(USER_NAMES)))
    users = tuple(UserSpec(n, draw(st.booleans())) for n in names)
    exts = draw(st.lists(st.sampled_from(GROUP_IDS), unique=True, max_size=5))
    # refs to users or groups that may not be in this snapshot (dangling ones)
    refs = ([*(user_ref(n) for n in names), *(group_ref(g) for g in exts)] if tidy
            else REFS)
    categories = ["a", "b", "a", "b", "skip"] if tidy else ["a", "b", "skip", None]
    groups = tuple(GroupSpec(
        ext=ext,
        name=draw(st.sampled_from(GROUP_NAMES)),
        category=draw(st.sampled_from(categories)),
        description=draw(st.sampled_from(["", "one", "two"])),
        members=tuple(draw(st.lists(st.sampled_from(refs), unique=True, max_size=6)))
        if refs else (),
        owners=tuple(draw(st.lists(st.sampled_from(refs), unique=True, max_size=2)))
        if refs else (),
    ) for ext in exts)
    return SourceSpec(users, groups)


@st.composite
def edited(draw: st.DrawFn, base: SourceSpec) -> SourceSpec:
    """``base`` with a few edits, as a directory changes between two runs: users enabled,
    disabled, removed or added; groups changed, removed or added; the rest as they were."""
    users = []
    for u in base.users:
        edit = draw(st.sampled_from(["keep", "keep", "flip", "remove"]))
        if edit != "remove":
            users.append(UserSpec(u.name, not u.disabled if edit == "flip" else u.disabled))
    taken = {u.name for u in base.users}
    users += [UserSpec(n, draw(st.booleans())) for n in draw(st.lists(
        st.sampled_from([n for n in USER_NAMES if n not in taken] or ["zed"]), unique=True,
        max_size=2)) if n not in taken]
    redrawn = {g.ext: g for g in draw(sources(tidy=True)).groups}
    groups = []
    for g in base.groups:
        edit = draw(st.sampled_from(["keep", "keep", "keep", "change", "remove"]))
        if edit == "keep" or (edit == "change" and g.ext not in redrawn):
            groups.append(g)
        elif edit == "change":
            groups.append(redrawn[g.ext])
    known = {g.ext for g in base.groups}
    groups += [g for ext, g in redrawn.items() if ext not in known and draw(st.booleans())]
    return SourceSpec(tuple(users), tuple(groups))


@st.composite
def rule_sets(draw: st.DrawFn, group_roles: bool = True) -> list[Rule]:
    def members() -> dict[str, str]:
        return {"nested": draw(st.sampled_from(["flatten", "ignore"])),
                "unknown_users": draw(st.sampled_from(["create", "invite", "skip"])),
                "disabled_users": draw(st.sampled_from(["deactivate", "remove"]))}

    def gone() -> str:
        return draw(st.sampled_from(["delete", "archive", "keep"]))

    return [Rule.model_validate(r) for r in [
        {"name": "skip", "when": {"attribute": {"name": "category", "equals": "skip"}},
         "action": "skip"},
        {"name": "alpha", "when": {"attribute": {"name": "category", "equals": "a"}},
         "roles": {"owner": {"attribute": "owner"},
                   **({"facilitator": {"group": "lead"}} if group_roles else {})},
         "members": members(), "on_source_delete": gone(),
         "adopt_existing": draw(st.booleans())},
        {"name": "beta", "source": CONNECTOR,
         "when": {"attribute": {"name": "category", "equals": "b"}},
         "group": {"name": "b-{name}", "description": "{description} ({id})",
                   "organisation": draw(st.sampled_from(ORGANISATIONS)),
                   "kind": draw(st.sampled_from(["standard", "open"]))},
         "members": members(), "on_source_delete": gone(),
         "adopt_existing": draw(st.booleans())},
    ]]


@dataclass
class StoreSpec:
    """Rows written before the first sync: users, manual and foreign groups and members."""

    users: list[str] = field(default_factory=list)
    # (organisation, name, foreign, external id of a foreign group)
    groups: list[tuple[str, str, bool, str | None]] = field(default_factory=list)
    # (group index, user index, role, status)
    members: list[tuple[int, int, str, str]] = field(default_factory=list)


@st.composite
def store_states(draw: st.DrawFn) -> StoreSpec:
    users = draw(st.lists(st.sampled_from([*USER_NAMES, "zed", "yan"]), unique=True,
                          max_size=5))
    targets = draw(st.lists(st.tuples(st.sampled_from(ORGANISATIONS),
                                      st.sampled_from(STORE_GROUP_NAMES)),
                            unique=True, max_size=5))
    groups = []
    for org, name in targets:
        foreign = draw(st.booleans())
        groups.append((org, name, foreign, draw(st.sampled_from(GROUP_IDS)) if foreign
                       else None))
    members = []
    if users and groups:
        pairs = draw(st.lists(st.tuples(st.integers(0, len(groups) - 1),
                                        st.integers(0, len(users) - 1)),
                              unique=True, max_size=8))
        members = [(g, u, draw(st.sampled_from(ROLES)), draw(st.sampled_from(STATUSES)))
                   for g, u in pairs]
    return StoreSpec(users, groups, members)


# -- the store ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store at head, copied for each example (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "syncd.db"
    engine = open_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def memory_connector() -> Iterator[None]:
    """The engine finds connector classes through ``available``: offer ours."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(syncd.engine, "available", lambda: {"memory": MemoryConnector})
        yield


def add_user(conn: Connection, name: str) -> str:
    uid = new_id()
    conn.execute(insert(USERS).values(id=uid, user_name=name, email=f"{name}@example.org",
                                      external=False, status="active", source=None,
                                      created_at=utcnow(), updated_at=utcnow()))
    return uid


def add_membership(conn: Connection, gid: str, uid: str, role: str, status: str,
                   foreign: bool) -> None:
    conn.execute(insert(MEMBERSHIPS).values(
        group_id=gid, user_id=uid, role=role, status=status,
        origin="sync" if foreign else "manual", source=OTHER if foreign else None,
        rule="cloud" if foreign else None, created_at=utcnow(), updated_at=utcnow()))


def seed(engine: Engine, spec: StoreSpec) -> None:
    with engine.begin() as conn:
        uids = [add_user(conn, n) for n in spec.users]
        gids = []
        for i, (org, name, foreign, ext) in enumerate(spec.groups):
            gid = new_id()
            gids.append(gid)
            conn.execute(insert(GROUPS).values(
                id=gid, name=name, description=f"store group {i}", kind="standard",
                organisation=org, managed=foreign, source=OTHER if foreign else None,
                external_id=ext, rule="cloud" if foreign else None, archived=False,
                created_at=utcnow(), updated_at=utcnow()))
        for g, u, role, status in spec.members:
            add_membership(conn, gids[g], uids[u], role, status, spec.groups[g][2])


def add_to_synced_groups(engine: Engine, picks: list[tuple[int, int, str, bool]]) -> None:
    """Manual and foreign memberships in groups sync made (for users sync has no row for)."""
    with engine.begin() as conn:
        gids = conn.execute(select(GROUPS.c.id).where(
            GROUPS.c.managed, GROUPS.c.source == CONNECTOR).order_by(GROUPS.c.id)
        ).scalars().all()
        uids = conn.execute(select(USERS.c.id).order_by(USERS.c.user_name)).scalars().all()
        if not gids or not uids:
            return
        taken = {(r[0], r[1]) for r in conn.execute(
            select(MEMBERSHIPS.c.group_id, MEMBERSHIPS.c.user_id))}
        for g, u, role, foreign in picks:
            key = (gids[g % len(gids)], uids[u % len(uids)])
            if key not in taken:
                taken.add(key)
                add_membership(conn, *key, role, "accepted", foreign)


def protected(engine: Engine) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    """Every group and membership sync did not make, as whole rows."""
    with engine.connect() as conn:
        groups = {r.id: r for r in conn.execute(select(GROUPS))
                  if not (r.managed and r.source == CONNECTOR)}
        members = {(r.group_id, r.user_id): tuple(r) for r in conn.execute(select(MEMBERSHIPS))
                   if not (r.origin == "sync" and r.source == CONNECTOR)}
    return groups, members


def group_rows(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(select(GROUPS))}


def audit_of(engine: Engine, run_id: str) -> Counter[tuple[str, str | None, str | None]]:
    with engine.connect() as conn:
        whole = records().subquery()
        rows = conn.execute(select(whole.c.op, whole.c.group_name, whole.c.user_name)
                            .where(whole.c.run_id == run_id))
        return Counter((r[0], r[1], r[2]) for r in rows)


def changes_of(result: RunResult) -> Counter[tuple[str, str | None, str | None]]:
    return Counter((c.op, getattr(c, "group", None), getattr(c, "user", None))
                   for c in result.plan.changes)


# -- the property -------------------------------------------------------------------------


def config(rules: list[Rule]) -> BaseConfig:
    return BaseConfig(version=1, safety=SafetyConfig(shrink_guard=0),
                      connectors=[MemoryConfig(name=CONNECTOR, type="memory")], rules=rules)


def sync(engine: Engine, cfg: BaseConfig, source: SourceSpec, dry_run: bool) -> RunResult:
    MemoryConnector.source = source
    return SyncEngine(cfg, engine, AuditWriter(None)).run([], RunOptions(dry_run=dry_run))


def check_run(engine: Engine, cfg: BaseConfig, source: SourceSpec) -> None:
    """One real run of ``source`` and the three properties."""
    groups_before, members_before = protected(engine)
    result = sync(engine, cfg, source, dry_run=False)
    cp = result.plan.connectors[CONNECTOR]
    assert result.status in ("applied", "no_changes"), (cp.status, cp.error, cp.blocked_by)

    # the audit records are the applied changes, one for one
    assert audit_of(engine, result.plan.run_id) == changes_of(result)

    # manual and foreign rows are as they were
    after = group_rows(engine)
    deleted = {c.key for c in result.plan.changes if c.op == "delete_group"}  # type: ignore[attr-defined]
    adopters = {r.name for r in cfg.rules if r.adopt_existing}
    for gid, row in groups_before.items():
        now = after.get(gid)
        assert now is not None, f"sync deleted a group it did not make: {row}"
        if tuple(now) != tuple(row):
            assert now.managed and now.source == CONNECTOR and now.rule in adopters, (
                f"sync changed a group it did not make: {row} -> {now}")
            assert not row.managed, "only a local group may be adopted"
    _, members_after = protected(engine)
    for key, row in members_before.items():
        if key[0] in deleted:
            assert key not in members_after
            continue
        assert members_after.get(key) == row, "sync changed a membership it did not make"

    # nothing is left to do
    again = sync(engine, cfg, source, dry_run=True)
    assert again.status == "no_changes", [c.to_json() for c in again.plan.changes]
    assert again.plan.changes == []


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rules=rule_sets(), changed_rules=rule_sets(), store=store_states(), first=sources(),
       second=sources(),
       later=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9),
                                st.sampled_from(ROLES), st.booleans()), max_size=4))
def test_sync_converges_and_touches_only_its_own_rows(
        template_db: Path, memory_connector: None, rules: list[Rule],
        changed_rules: list[Rule], store: StoreSpec, first: SourceSpec, second: SourceSpec,
        later: list[tuple[int, int, str, bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "syncd.db"
        shutil.copyfile(template_db, db)
        engine = open_engine(f"sqlite:///{db}")
        try:
            seed(engine, store)
            check_run(engine, config(rules), first)
            add_to_synced_groups(engine, later)
            check_run(engine, config(rules), second)
            # the same source under changed rules, then the first source again
            check_run(engine, config(changed_rules), second)
            check_run(engine, config(rules), first)
        finally:
            engine.dispose()


# -- a delta run plans what a full run plans ----------------------------------------------


def state_by_name(engine: Engine) -> tuple[Any, ...]:
    """Users, groups and memberships by name (ids differ from store to store)."""
    with engine.connect() as conn:
        names = {r[0]: r[1] for r in conn.execute(select(USERS.c.id, USERS.c.user_name))}
        users = sorted(tuple(r[1:]) for r in conn.execute(select(
            USERS.c.id, USERS.c.user_name, USERS.c.email, USERS.c.status, USERS.c.source)))
        groups = {r.id: (r.organisation, r.name) for r in conn.execute(select(GROUPS))}
        group_rows = sorted((r.organisation, r.name, r.description, r.kind, r.managed,
                             r.source, r.external_id, r.rule, r.archived)
                            for r in conn.execute(select(GROUPS)))
        members = sorted((groups[r.group_id], names[r.user_id], r.role, r.status, r.origin,
                          r.source, r.rule) for r in conn.execute(select(MEMBERSHIPS)))
    return users, group_rows, members


def source_warnings(result: RunResult) -> list[tuple[str, str]]:
    """The warnings of a run about the source's state, sorted."""
    return sorted((w.code, w.message) for w in result.plan.warnings()
                  if w.code in ("nesting_cycle", "dangling_member", "dangling_role"))


ANN, BEN = user_ref("ann"), user_ref("ben")
SIMPLE_RULES = [Rule.model_validate(r) for r in [
    {"name": "alpha", "when": {"attribute": {"name": "category", "equals": "a"}},
     "roles": {"owner": {"attribute": "owner"}}},
]]
# a group the delta leaves as it was (g1, holding g0) but whose members it moves
G0 = GroupSpec("g0", "red", "a", "", (ANN, BEN), ())
G1 = GroupSpec("g1", "blue", "a", "", (group_ref("g0"),), (BEN,))
TWO = (UserSpec("ann", False), UserSpec("ben", False))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rules=st.booleans().flatmap(lambda g: rule_sets(group_roles=g)), store=store_states(),
       pair=sources(tidy=True).flatmap(lambda f: st.tuples(st.just(f), edited(f))))
@example(rules=SIMPLE_RULES, store=StoreSpec(), pair=(  # a member disabled
    SourceSpec(TWO, (G0,)), SourceSpec((UserSpec("ann", True), TWO[1]), (G0,))))
@example(rules=SIMPLE_RULES, store=StoreSpec(), pair=(  # a member removed
    SourceSpec(TWO, (G0,)), SourceSpec(TWO[1:], (G0,))))
@example(rules=SIMPLE_RULES, store=StoreSpec(), pair=(  # the nested group's member disabled
    SourceSpec(TWO, (G0, G1)), SourceSpec((UserSpec("ann", True), TWO[1]), (G0, G1))))
@example(rules=SIMPLE_RULES, store=StoreSpec(), pair=(  # the owner disabled
    SourceSpec(TWO, (G0, G1)), SourceSpec((TWO[0], UserSpec("ben", True)), (G0, G1))))
@example(rules=SIMPLE_RULES, store=StoreSpec(), pair=(  # the nested group changed
    SourceSpec(TWO, (G0, G1)),
    SourceSpec(TWO, (GroupSpec("g0", "red", "a", "", (ANN,), ()), G1))))
def test_a_delta_run_plans_what_a_full_run_plans(
        template_db: Path, memory_connector: None, rules: list[Rule], store: StoreSpec,
        pair: tuple[SourceSpec, SourceSpec]) -> None:
    """Two stores synced from ``first``; then ``second``, a few edits away, comes as a delta
    to one and as a full run to the other. The plans, their warnings and the stores after
    them are the same."""
    first, second = pair
    with tempfile.TemporaryDirectory() as tmp:
        engines = []
        for name in ("delta.db", "full.db"):
            shutil.copyfile(template_db, Path(tmp) / name)
            engines.append(open_engine(f"sqlite:///{Path(tmp) / name}"))
        by_delta, by_full = engines
        MemoryConnector.supports_delta = True
        try:
            for engine in engines:
                seed(engine, store)
                first_run = sync(engine, config(rules), first, dry_run=False)
                assert first_run.plan.connectors[CONNECTOR].mode == "full"
            MemoryConnector.previous = first
            MemoryConnector.source = second
            delta = SyncEngine(config(rules), by_delta, AuditWriter(None)).run(
                [], RunOptions())
            full = SyncEngine(config(rules), by_full, AuditWriter(None)).run(
                [], RunOptions(full=True))
            assert delta.plan.connectors[CONNECTOR].mode == "delta"
            assert full.plan.connectors[CONNECTOR].mode == "full"
            assert changes_of(delta) == changes_of(full)
            assert delta.status == full.status
            # a warning about the source's state comes with every run that sees it (a
            # name_conflict is about the store too, whose random ids can order ties)
            assert source_warnings(delta) == source_warnings(full)
            assert state_by_name(by_delta) == state_by_name(by_full)
        finally:
            MemoryConnector.supports_delta = False
            MemoryConnector.previous = SourceSpec((), ())
            for engine in engines:
                engine.dispose()
