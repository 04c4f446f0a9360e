"""The audit trail is complete and only true, whatever happens to the runs (issue: "an audit
trail that is complete and only true").

For any sequence of sources synced one after another, each run possibly killed at one of
the moments that matter (in the middle of its apply, right after its commit before the
audit file is written, or in the middle of writing the audit file), and re-run:

- the audit records of every run equal the changes that run actually made to the store,
  found by comparing the store before and after it (a killed apply made none and has none);
- the audit file, once caught up, holds every record of the store exactly once, in order.

The source is the in-test connector of ``test_property``; a kill is an exception that no
code of syncd catches (``Killed``, a BaseException, as a signal would end the process).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from test_property import (
    CONNECTOR,
    G0,
    G1,
    SIMPLE_RULES,
    TWO,
    MemoryConnector,
    SourceSpec,
    add_to_synced_groups,
    config,
    rule_sets,
    sources,
    template_db,  # noqa: F401 (a fixture)
)

import syncd.auditfile
import syncd.engine
from syncd.audit import AuditWriter, records
from syncd.auditfile import AuditFile
from syncd.config.rules import Rule
from syncd.engine import RunOptions, SyncEngine
from syncd.store.db import open_engine
from syncd.store.schema import tables

GROUPS, USERS, MEMBERSHIPS = tables["groups"], tables["users"], tables["memberships"]
GROUP_FIELDS = ("name", "description", "kind", "organisation", "icon", "managed", "source",
                "external_id", "rule")
KILLS = ["none", "none", "apply", "after_commit", "file_append"]

Key = tuple[str, str | None, str | None]


class Killed(BaseException):
    """The process ends here (nothing in syncd catches a BaseException that is not its own)."""


class KillingWriter(AuditWriter):
    """An audit writer that dies where the test says: in the apply's n-th batch of records,
    or right after the commit."""

    def __init__(self, file: Path, kill: str, at: int) -> None:
        super().__init__(file)
        self.kill, self.left = kill, at

    def add_columns(self, *args: Any, **kwargs: Any) -> None:
        if self.kill == "apply":
            self.left -= 1
            if self.left < 0:
                raise Killed
        super().add_columns(*args, **kwargs)

    def committed(self, engine: Engine) -> None:
        if self.kill == "after_commit":
            raise Killed
        super().committed(engine)


@pytest.fixture(scope="module")
def memory_connector() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(syncd.engine, "available", lambda: {"memory": MemoryConnector})
        yield


def state(engine: Engine) -> dict[str, Any]:
    """Users by name, groups by id, memberships by (group id, user id)."""
    with engine.connect() as conn:
        users = {r.user_name: r.id for r in conn.execute(select(USERS))}
        groups = {r.id: r for r in conn.execute(select(GROUPS))}
        members = {(r.group_id, r.user_id): (r.role, r.status)
                   for r in conn.execute(select(MEMBERSHIPS))}
    return {"users": users, "groups": groups, "members": members}


def made(before: dict[str, Any], after: dict[str, Any]) -> Counter[Key]:
    """The changes between two states, as (op, group, user): a member change names its
    group as it was before the run (as the plan and its records do)."""
    out: Counter[Key] = Counter()
    names = {**{uid: n for n, uid in after["users"].items()},
             **{uid: n for n, uid in before["users"].items()}}
    out.update(("create_user", None, n) for n in set(after["users"]) - set(before["users"]))
    old, new = before["groups"], after["groups"]
    group_name = {**{gid: g.name for gid, g in new.items()},
                  **{gid: g.name for gid, g in old.items()}}
    out.update(("create_group", new[gid].name, None) for gid in set(new) - set(old))
    out.update(("delete_group", old[gid].name, None) for gid in set(old) - set(new))
    for gid in set(old) & set(new):
        a, b = old[gid], new[gid]
        if not a.archived and b.archived:
            out[("archive_group", a.name, None)] += 1
        elif any(getattr(a, f) != getattr(b, f) for f in (*GROUP_FIELDS, "archived")):
            out[("update_group", a.name, None)] += 1
    was, now = before["members"], after["members"]
    for key in set(was) | set(now):
        where = (group_name[key[0]], names[key[1]])
        if key not in was:
            out[("add_member", *where)] += 1
        elif key not in now:
            out[("remove_member", *where)] += 1
        else:
            out.update(("change_role", *where) for _ in range(was[key][0] != now[key][0]))
            out.update(("set_member_status", *where) for _ in range(was[key][1] != now[key][1]))
    return out


def recorded(engine: Engine, run_id: str) -> Counter[Key]:
    with engine.connect() as conn:
        whole = records().subquery()
        rows = conn.execute(select(whole.c.op, whole.c.group_name, whole.c.user_name)
                            .where(whole.c.run_id == run_id))
        # an invited user is a created one, as far as the store can tell
        return Counter(("create_user" if r[0] == "invite_user" else r[0], r[1], r[2])
                       for r in rows)


def kill_file_append(mp: pytest.MonkeyPatch) -> None:
    """The next catch-up writes half of its first chunk, then dies."""
    pending = AuditFile._pending

    def dying(self: AuditFile, conn: Any, last_id: int) -> Iterator[tuple[bytes, int]]:
        for lines, _newest in pending(self, conn, last_id):
            yield lines[: max(1, len(lines) // 2)], _newest
            raise Killed

    mp.setattr(syncd.auditfile.AuditFile, "_pending", dying)


def run(engine: Engine, rules: list[Rule], source: SourceSpec, file: Path, kill: str,
        at: int) -> None:
    """One sync, killed as ``kill`` says; check its records against what it changed."""
    before = state(engine)
    MemoryConnector.source = source
    writer = KillingWriter(file, kill, at)
    sync = SyncEngine(config(rules), engine, writer)
    with pytest.MonkeyPatch.context() as mp:
        if kill == "file_append":
            kill_file_append(mp)
        try:
            result = sync.run([], RunOptions(full=True))
        except Killed:
            result = None
    after = state(engine)
    if result is None:  # which run it was: the newest run row, if the run got that far
        with engine.connect() as conn:
            runs = tables["runs"]
            row = conn.execute(select(runs.c.id).order_by(runs.c.started.desc())
                               .limit(1)).first()
        run_id = row.id if row is not None and after != before else None
    else:
        cp = result.plan.connectors[CONNECTOR]
        assert cp.status == "ok", (cp.status, cp.error, cp.blocked_by)
        run_id = result.plan.run_id
    actual = made(before, after)
    assert (recorded(engine, run_id) if run_id else Counter()) == actual


def file_matches_store(engine: Engine, file: Path) -> None:
    AuditWriter(file).catch_up(engine)
    with engine.connect() as conn:
        query = records()
        store = [json.loads(syncd.auditfile.file_line(syncd.audit.Audit.from_row(r)))
                 for r in conn.execute(query.order_by(query.selected_columns.id))]
    lines = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]
    assert lines == store


Step = tuple[SourceSpec, str, int, bool]
STEPS = st.lists(st.tuples(sources(), st.sampled_from(KILLS), st.integers(0, 3),
                           st.booleans()), min_size=1, max_size=5)
BOTH = SourceSpec(TWO, (G0, G1))
NONE = SourceSpec(TWO, ())


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rules=rule_sets(), steps=STEPS)
@example(rules=SIMPLE_RULES, steps=[  # groups with manual members deleted, killed after commit
    (BOTH, "none", 0, True), (NONE, "after_commit", 0, False)])
@example(rules=SIMPLE_RULES, steps=[  # the same, killed in the apply, then half-way through
    (BOTH, "none", 0, True), (NONE, "apply", 0, False), (BOTH, "file_append", 0, True),
    (NONE, "file_append", 0, False)])
def test_audit_records_are_the_changes_made_whatever_kills_the_runs(
        template_db: Path, memory_connector: None, rules: list[Rule],  # noqa: F811
        steps: list[Step]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "syncd.db"
        shutil.copyfile(template_db, db)
        engine = open_engine(f"sqlite:///{db}")
        file = Path(tmp) / "audit" / "audit.jsonl"
        try:
            for source, kill, at, by_hand in steps:
                run(engine, rules, source, file, kill, at)
                # the re-run after a kill: it catches the file up and finishes the work
                run(engine, rules, source, file, "none", 0)
                if by_hand:  # manual memberships in the groups sync made
                    add_to_synced_groups(engine, [(0, 0, "member", False),
                                                  (1, 1, "owner", False)])
            file_matches_store(engine, file)
        finally:
            engine.dispose()
