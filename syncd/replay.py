"""``syncd apply``: apply a saved plan, only to the store and config it was made for, and only
if the store is as it was when planned."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine

from syncd import lease
from syncd.apply import Applier
from syncd.audit import Audit, AuditWriter
from syncd.config.model import Config
from syncd.engine import RunResult
from syncd.errors import StaleChange, SyncdError, UsageError
from syncd.existing import ExistingState, state_digest
from syncd.plan import Blocked, ConnectorPlan, Plan
from syncd.render import PlanOrigin, config_digest, read_plan_file
from syncd.store.bulk import foreign_keys_unchecked
from syncd.store.info import store_id
from syncd.store.schema import tables, utcnow

RUNS = tables["runs"]


def apply_plan(path: Path, engine: Engine, audit: AuditWriter, cfg: Config,
               force: bool) -> RunResult:
    """Apply every connector's changes of a plan file in one transaction; refuse a plan
    made for another store or config, a stale one, or (without ``force``) a blocked one.
    A change that finds nothing to change is an error of the plan: nothing is applied."""
    plan, origin = read_plan_file(path)
    result = RunResult(plan, dry_run=False)
    with engine.connect() as conn:
        mismatch = _mismatch(conn, plan, origin, cfg)
    for name, cp in plan.connectors.items():
        if mismatch:
            cp.status = "blocked"
            cp.blocked_by = mismatch.get(name, [])
        elif cp.blocked_by and not force:
            cp.status = "blocked"
        else:  # nothing blocks it (any more): a plan saved as blocked is applied with --force
            cp.blocked_by, cp.status = [], "ok"
    if any(cp.status == "blocked" for cp in plan.connectors.values()):
        _record_blocked(engine, audit, plan, path)
        return result
    audit.catch_up(engine)
    holder = lease.holder_name()
    names = [lease.connector_lease(name) for name in plan.connectors]
    taken: list[str] = []
    try:
        for name in names:
            if not lease.acquire(engine, name, holder, lease.RUN_TTL):
                held = lease.current(engine, name)
                raise SyncdError(f"{name.removeprefix('connector:')!r} is being synced by "
                                 f"{held.holder if held else 'another process'}: apply the "
                                 "plan once that run is over; nothing was applied")
            taken.append(name)
        _apply(path, engine, audit, plan, result)
    finally:
        for name in taken:
            lease.release(engine, name, holder)
    return result


def _mismatch(conn: Connection, plan: Plan, origin: PlanOrigin,
              cfg: Config) -> dict[str, list[Blocked]]:
    """Why the plan may not be applied to this store with this config: each connector's
    blocks (empty when it may)."""
    here = store_id(conn)
    if origin.store_id != here:
        return {name: [Blocked("stale_plan", detail=f"the plan was made for another store "
                               f"(id {origin.store_id}; this store is {here})")]
                for name in plan.connectors}
    digest = config_digest(cfg)
    if origin.config_digest != digest:
        return {name: [Blocked("config_changed", detail=f"the plan was made from another "
                               f"config ({origin.config_path}, {origin.config_digest}); this "
                               f"one is {cfg.path} ({digest})")]
                for name in plan.connectors}
    return {name: [Blocked("stale_plan", detail="the store changed since the plan was made")]
            for name, cp in plan.connectors.items()
            if state_digest(conn, name) != cp.state_digest}


def _record_blocked(engine: Engine, audit: AuditWriter, plan: Plan, path: Path) -> None:
    with engine.begin() as conn:
        for name, cp in plan.connectors.items():
            if cp.blocked_by:
                audit.add(conn, Audit(actor=f"sync:{name}", op="run_blocked",
                                      run_id=plan.run_id, source=name, extra={
                                          "mode": "apply", "plan": str(path),
                                          "blocked_by": [b.to_json() for b in cp.blocked_by]}))
        audit.flush_rows(conn)
    audit.committed(engine)


def _apply(path: Path, engine: Engine, audit: AuditWriter, plan: Plan,
           result: RunResult) -> None:
    """Every connector's changes in one transaction: all of them, or none. The state each
    connector's plan was made on is checked again inside it, for all of them before any is
    applied (one connector's changes move the state the next one reads)."""
    with engine.connect() as conn, foreign_keys_unchecked(conn):
        try:
            moved = [cp for name, cp in plan.connectors.items()
                     if state_digest(conn, name) != cp.state_digest]
            if moved:  # the store moved between the check and the transaction
                conn.rollback()
                for cp in plan.connectors.values():
                    cp.status = "blocked"
                for cp in moved:
                    cp.blocked_by = [Blocked("stale_plan", detail="the store changed while "
                                             "applying")]
                return
            for name, cp in plan.connectors.items():
                started = utcnow()
                existing = ExistingState(conn, name)  # with what the connectors before made
                Applier(conn, name, plan.run_id, audit, existing).apply(cp.changes)
                _insert_run(conn, plan.run_id, cp, started)
            conn.commit()
        except StaleChange as exc:
            conn.rollback()
            audit.rolled_back()
            raise UsageError(f"{path}: the plan does not match this store: {exc}; nothing "
                             "was applied") from None
        except BaseException:
            conn.rollback()
            audit.rolled_back()
            raise
    audit.committed(engine)
    result.applied.update(plan.connectors)


def _insert_run(conn: Connection, run_id: str, cp: ConnectorPlan, started: object) -> None:
    conn.execute(RUNS.insert().values(
        id=run_id, connector=cp.connector, mode="apply", dry_run=False, started=started,
        finished=utcnow(), status="applied" if cp.changes else "no_changes",
        counts={"changes": len(cp.changes), **cp.counts()}))
