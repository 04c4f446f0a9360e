"""``syncd apply``: apply a saved plan, only if the store is as it was when planned."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from syncd.apply import Applier
from syncd.audit import Audit, AuditWriter
from syncd.engine import RunResult
from syncd.existing import ExistingState, state_digest
from syncd.plan import Blocked
from syncd.render import read_plan_file
from syncd.store.bulk import foreign_keys_unchecked
from syncd.store.schema import tables, utcnow

RUNS = tables["runs"]


def apply_plan(path: Path, engine: Engine, audit: AuditWriter, force: bool) -> RunResult:
    """Apply every connector's changes of a plan file; refuse a stale or blocked plan."""
    plan, _doc = read_plan_file(path)
    result = RunResult(plan, dry_run=False)
    with engine.connect() as conn:
        stale = [name for name, cp in plan.connectors.items()
                 if state_digest(conn, name) != cp.state_digest]
    for name, cp in plan.connectors.items():
        if stale:
            cp.status = "blocked"
            cp.blocked_by = [Blocked("stale_plan", detail="the store changed since the plan "
                                     "was made")] if name in stale else []
        elif cp.blocked_by and not force:
            cp.status = "blocked"
        else:  # nothing blocks it (any more): a plan saved as blocked is applied with --force
            cp.blocked_by, cp.status = [], "ok"
    if any(cp.status == "blocked" for cp in plan.connectors.values()):
        with engine.begin() as conn:
            for name, cp in plan.connectors.items():
                if cp.blocked_by:
                    audit.add(conn, Audit(actor=f"sync:{name}", op="run_blocked",
                                          run_id=plan.run_id, source=name, extra={
                                              "mode": "apply", "plan": str(path),
                                              "blocked_by": [b.to_json()
                                                             for b in cp.blocked_by]}))
            audit.flush_rows(conn)
        audit.committed()
        return result
    for name, cp in plan.connectors.items():
        started = utcnow()
        with engine.connect() as conn:
            existing = ExistingState(conn, name, digest=True)
            for _ in existing.memberships():
                pass
            if existing.digest() != cp.state_digest:  # moved between check and apply
                conn.rollback()
                cp.status = "blocked"
                cp.blocked_by = [Blocked("stale_plan", detail="the store changed while "
                                         "applying")]
                continue
            with foreign_keys_unchecked(conn):
                try:
                    Applier(conn, name, plan.run_id, audit, existing).apply(cp.changes)
                    conn.execute(RUNS.insert().values(
                        id=plan.run_id, connector=name, mode="apply", dry_run=False,
                        started=started, finished=utcnow(),
                        status="applied" if cp.changes else "no_changes",
                        counts={"changes": len(cp.changes), **cp.counts()}))
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    audit.rolled_back()
                    raise
        audit.committed()
        result.applied.add(name)
    return result
