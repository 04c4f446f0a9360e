"""One sync run: connector -> snapshot or delta -> mirror -> rules -> diff -> plan -> safety
-> apply (one transaction per connector) -> audit records and the run report.
"""

from __future__ import annotations

import gc
import resource
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from syncd import lease, mirror, safety, secrets
from syncd.apply import Applier
from syncd.audit import Audit, AuditWriter
from syncd.config.model import Config
from syncd.config.rules import Rule
from syncd.connector import Connector, available
from syncd.diff import Differ
from syncd.errors import SourceError, StaleChange, SyncdError, UsageError
from syncd.existing import ExistingState
from syncd.index import SourceIndex
from syncd.plan import ConnectorPlan, CreateUser, Plan
from syncd.rules import (
    Evaluator,
    MemberResolver,
    Warning,
    desired_groups,
    fingerprint,
    needed_attributes,
    rules_for,
)
from syncd.store.bulk import foreign_keys_unchecked
from syncd.store.info import store_id
from syncd.store.schema import tables, utcnow

log = structlog.get_logger("syncd.engine")

RUNS = tables["runs"]
CURSORS = tables["cursors"]

# Reports what a run is doing, for a progress display: (connector, phase, done, total).
ProgressHook = Callable[[str, str, int, int | None], None]


@dataclass
class RunOptions:
    """How to run: plan only, full or delta, override safety, offline from the mirror."""

    dry_run: bool = False
    full: bool = False
    force: bool = False
    offline: bool = False
    rules: list[Rule] | None = None
    progress: ProgressHook | None = None
    # Record the store state digest a saved plan is checked against (costs a pass over
    # every membership row read; only --plan-out needs it).
    state_digest: bool = False


@dataclass
class Pulled:
    """What a connector gave: the complete picture, and the cursor to keep on success."""

    index: SourceIndex
    mode: str
    cursor: dict[str, Any] | None
    from_source: bool = True
    touched: mirror.Touched | None = None  # a delta's entries: what the mirror rewrites
    warnings: list[Warning] = field(default_factory=list)  # the connector's own


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class RunResult:
    """The plan of a run and how each connector ended."""

    plan: Plan
    dry_run: bool
    applied: set[str] = field(default_factory=set)
    store_id: str | None = None  # the store planned against, for a saved plan

    @property
    def status(self) -> str:
        """``failed``, ``blocked``, ``applied``, ``planned`` or ``no_changes``."""
        states = {cp.status for cp in self.plan.connectors.values()}
        if "failed" in states:
            return "failed"
        if "blocked" in states:
            return "blocked"
        if not self.plan.changes:
            return "no_changes"
        return "planned" if self.dry_run else "applied"


class SyncEngine:
    """Runs connectors against the store."""

    def __init__(self, config: Config, engine: Engine, audit: AuditWriter) -> None:
        self.config = config
        self.engine = engine
        self.audit = audit

    # -- connectors -------------------------------------------------------------------------

    def connector(self, name: str, rules: list[Rule]) -> Connector:
        """Make the named connector, asking only for the attributes its rules read."""
        try:
            cfg = self.config.connector(name)
        except KeyError:
            known = ", ".join(c.name for c in self.config.connectors) or "none"
            raise UsageError(f"no connector named {name!r} (configured: {known})") from None
        cls = available()[cfg.type]
        return cls(cfg, base_dir=self.config.base_dir,
                   needed_attributes=needed_attributes(rules_for(rules, name)))

    def _cursor(self, conn: Connection, name: str) -> dict[str, Any] | None:
        row = conn.execute(select(CURSORS.c.cursor).where(CURSORS.c.connector == name)).first()
        return row[0] if row else None

    def pull(self, connector: Connector, opts: RunOptions) -> Pulled:
        """The complete current picture: from the mirror, a delta over it, or a snapshot."""
        name = connector.config.name
        needed = connector.needed_attributes
        with self.engine.connect() as conn:
            if opts.offline:
                index = mirror.load_index(conn, name, needed)
                return Pulled(index, "offline", None, from_source=False)
            cursor = self._cursor(conn, name)
            mirrored = mirror.info(conn, name)
            # A delta is laid over the mirror: only when the mirror holds every attribute
            # the rules read now (a rule change may need one the last pull did not fetch).
            if not opts.full and cursor is not None and connector.supports_delta \
                    and mirrored is not None and not mirrored.missing(needed):
                delta = connector.begin_delta(cursor)
                if delta is not None:
                    index, touched = mirror.with_delta(conn, name, delta)
                    return Pulled(index, "delta", delta.cursor, touched=touched,
                                  warnings=delta.warnings)
        snap = connector.snapshot()
        return Pulled(SourceIndex.build(snap.users, snap.groups), "full", snap.cursor,
                      warnings=snap.warnings)

    # -- a run ------------------------------------------------------------------------------

    def run(self, names: list[str], opts: RunOptions) -> RunResult:
        """Plan, and unless a dry run apply, each named connector (all when none)."""
        with _no_gc():
            return self._run(names, opts)

    def _run(self, names: list[str], opts: RunOptions) -> RunResult:
        names = names or [c.name for c in self.config.connectors]
        rules = opts.rules if opts.rules is not None else self.config.rules
        plan = Plan(run_id=str(uuid.uuid4()))
        result = RunResult(plan, dry_run=opts.dry_run or opts.offline)
        connectors = [self.connector(n, rules) for n in names]
        if not result.dry_run:
            self.audit.catch_up(self.engine)  # before anything is applied
        if opts.state_digest:
            with self.engine.connect() as conn:
                result.store_id = store_id(conn)
        planned_users: set[str] = set()  # users the plans so far create (a dry run)
        for connector in connectors:
            name = connector.config.name
            structlog.contextvars.bind_contextvars(run_id=plan.run_id, connector=name)
            try:
                cp = self._leased_run(connector, rules, opts, plan.run_id, result)
            finally:
                connector.close()
                structlog.contextvars.unbind_contextvars("run_id", "connector")
            if result.dry_run and len(connectors) > 1:
                _once_per_plan(cp, planned_users)
            plan.connectors[name] = cp
        return result

    def _leased_run(self, connector: Connector, rules: list[Rule], opts: RunOptions,
                    run_id: str, result: RunResult) -> ConnectorPlan:
        """``_run_one`` under the connector's lease, the one the daemon takes, unless the
        run applies nothing: two runs of one connector never apply at the same time."""
        if result.dry_run:
            return self._run_one(connector, rules, opts, run_id, result)
        name = connector.config.name
        holder = lease.holder_name()
        if not lease.acquire(self.engine, lease.connector_lease(name), holder, lease.RUN_TTL):
            held = lease.current(self.engine, lease.connector_lease(name))
            by = (f"{held.holder} (its lease runs until {held.expires_at:%Y-%m-%d %H:%M:%S} "
                  "UTC)") if held else "another process"
            cp = ConnectorPlan(name, "full" if opts.full else "delta", status="failed")
            cp.error = f"connector {name!r} is being synced by {by}; nothing was applied"
            log.error("sync.lease_held", holder=held.holder if held else None)
            return cp
        try:
            return self._run_one(connector, rules, opts, run_id, result)
        finally:
            lease.release(self.engine, lease.connector_lease(name), holder)

    def _run_one(self, connector: Connector, rules: list[Rule], opts: RunOptions,
                 run_id: str, result: RunResult) -> ConnectorPlan:
        name = connector.config.name
        started = time.monotonic()
        started_at = utcnow()
        cp = ConnectorPlan(name, "offline" if opts.offline else "full")
        progress = opts.progress or (lambda *_: None)
        try:
            progress(name, "reading source", 0, None)
            try:
                pulled = self.pull(connector, opts)
            except (SyncdError, SQLAlchemyError):
                raise
            except Exception as exc:  # a connector's bug: the run fails, nothing changes
                log.exception("sync.connector_crashed")
                raise SourceError(f"connector {name!r} failed unexpectedly: "
                                  f"{exc.__class__.__name__}: {secrets.redact(str(exc))}"
                                  ) from exc
            cp.mode = pulled.mode
            cp.groups_seen = len(pulled.index.groups)
            cp.users_seen = len(pulled.index.users)
            progress(name, "planning", 0, None)
            self._plan_and_apply(connector, pulled, rules, opts, run_id, cp, result,
                                 started_at)
        except (SourceError, StaleChange) as exc:
            # syncd's words around the source's: its names stay readable (syncd.secrets).
            cp.status, cp.error = "failed", secrets.redact_own(str(exc))
            if not result.dry_run:
                self._record_outcome(run_id, cp, started_at, "run_failed")
        except SQLAlchemyError as exc:
            cp.status = "failed"
            cp.error = secrets.redact(f"store error: {exc.__class__.__name__}: {exc.orig or exc}"
                                      if hasattr(exc, "orig") else f"store error: {exc}")
            if not result.dry_run:
                self._record_outcome(run_id, cp, started_at, "run_failed")
        progress(name, "done", 0, None)
        counts = dict(cp.counts())
        log.info("sync.run", mode=cp.mode, status=cp.status, dry_run=result.dry_run,
                 groups_seen=cp.groups_seen, users_seen=cp.users_seen, changes=counts,
                 warnings=len(cp.warnings), blocked_by=[b.check for b in cp.blocked_by],
                 error=cp.error, duration_s=round(time.monotonic() - started, 3),
                 peak_memory_mib=round(peak_memory_mib(), 1))
        return cp

    def _plan_and_apply(self, connector: Connector, pulled: Pulled, rules: list[Rule],
                        opts: RunOptions, run_id: str, cp: ConnectorPlan,
                        result: RunResult, started_at: Any) -> None:
        name = connector.config.name
        with self.engine.connect() as conn:
            mirrored = mirror.info(conn, name)
            last_groups = mirrored.groups if mirrored is not None else None
            existing = ExistingState(conn, name, digest=opts.state_digest)
            evaluator = Evaluator(pulled.index, connector.normalise_ref)
            applicable = rules_for(rules, name)
            rules_digest = fingerprint(applicable)
            warnings: list[Warning] = []
            desired = list(desired_groups(applicable, name, evaluator, warnings))
            resolver = MemberResolver(pulled.index, connector.normalise_ref, warnings)
            # A delta run compares the members of the groups its delta can have moved, when
            # the mirror's last sync applied these same rules; a saved plan's state digest
            # needs every membership read, so --plan-out compares them all.
            touched = (pulled.touched if mirrored is not None and mirrored.rules == rules_digest
                       and not opts.state_digest else None)
            diff = Differ(name, pulled.index, applicable, resolver, existing).run(
                desired, touched,
                share_limits=safety.member_share_limit(self.config.safety, applicable))
            cp.changes, cp.warnings = diff.changes, pulled.warnings + diff.warnings
            cp.managed_groups, cp.managed_members = diff.managed_groups, diff.managed_members
            cp.managed_by_rule = diff.managed_by_rule
            cp.state_digest = existing.digest()
            cp.sort()
            blocked = safety.check(cp, self.config.safety, applicable,
                                   last_groups if pulled.from_source else None)
            if blocked and opts.force:
                cp.warnings.append(Warning("safety_overridden", "--force overrides: " + ", ".join(
                    f"{b.check} (limit {b.limit}, planned {b.planned})" for b in blocked)))
            elif blocked:
                cp.blocked_by, cp.status = blocked, "blocked"
            if result.dry_run:
                conn.rollback()
                return
            if cp.status == "blocked":
                conn.rollback()
                self._record_outcome(run_id, cp, started_at, "run_blocked")
                return
            with foreign_keys_unchecked(conn):
                try:
                    opts.progress and opts.progress(name, "applying", 0, len(cp.changes))
                    Applier(conn, name, run_id, self.audit, existing,
                            progress=_counting(opts.progress, name, len(cp.changes))
                            ).apply(cp.changes)
                    if pulled.from_source:
                        mirror.store_snapshot(conn, name, pulled.index,
                                              connector.needed_attributes, pulled.touched,
                                              rules=rules_digest,
                                              save_index=connector.supports_delta)
                        self._save_cursor(conn, name, pulled.cursor)
                    self._insert_run(conn, run_id, cp, started_at,
                                     "applied" if cp.changes else "no_changes")
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    self.audit.rolled_back()
                    raise
        self.audit.committed(self.engine)
        result.applied.add(name)

    # -- bookkeeping ------------------------------------------------------------------------

    def _save_cursor(self, conn: Connection, name: str, cursor: dict[str, Any] | None) -> None:
        if cursor is None:
            conn.execute(CURSORS.delete().where(CURSORS.c.connector == name))
            return
        found = conn.execute(update(CURSORS).where(CURSORS.c.connector == name)
                             .values(cursor=cursor, updated_at=utcnow())).rowcount
        if not found:
            conn.execute(insert(CURSORS).values(connector=name, cursor=cursor,
                                                updated_at=utcnow()))

    def _insert_run(self, conn: Connection, run_id: str, cp: ConnectorPlan, started_at: Any,
                    status: str) -> None:
        conn.execute(insert(RUNS).values(
            id=run_id, connector=cp.connector, mode=cp.mode, dry_run=False,
            started=started_at, finished=utcnow(), status=status,
            counts={"changes": len(cp.changes), **cp.counts(),
                    "groups_seen": cp.groups_seen, "users_seen": cp.users_seen},
            error=cp.error))

    def _record_outcome(self, run_id: str, cp: ConnectorPlan, started_at: Any,
                        op: str) -> None:
        """A failed or blocked run: one audit record and the run row, nothing else."""
        status = "failed" if op == "run_failed" else "blocked"
        extra: dict[str, Any] = {"mode": cp.mode}
        if cp.error:
            extra["error"] = cp.error
        if cp.blocked_by:
            extra["blocked_by"] = [b.to_json() for b in cp.blocked_by]
        try:
            with self.engine.begin() as conn:
                self.audit.add(conn, Audit(actor=f"sync:{cp.connector}", op=op, run_id=run_id,
                                           source=cp.connector, extra=extra))
                self.audit.flush_rows(conn)
                self._insert_run(conn, run_id, cp, started_at, status)
        except SQLAlchemyError as exc:
            self.audit.rolled_back()
            log.error("sync.outcome_not_recorded", op=op, error=str(exc))
            return
        self.audit.committed(self.engine)


def _once_per_plan(cp: ConnectorPlan, planned_users: set[str]) -> None:
    """A dry run plans each connector against the store as it is: a user that an earlier
    connector's plan creates is created there, and not again by this one (a real run plans
    each connector after the one before has applied; a saved plan applies them in order in
    one transaction). Adds this plan's new users to ``planned_users`` unless it failed (a
    failed connector is left out of a saved plan; a blocked one applies with --force)."""
    if planned_users and any(isinstance(c, CreateUser) and c.user in planned_users
                             for c in cp.changes):
        cp.changes = [c for c in cp.changes
                      if not (isinstance(c, CreateUser) and c.user in planned_users)]
    if cp.status != "failed":
        planned_users.update(c.user for c in cp.changes if isinstance(c, CreateUser))


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector off for a run: a run makes millions of small objects
    (source entries, changes) and no cycles, and the collector's passes over them grow with
    their number (on 2M memberships they doubled the time to plan). Reference counting
    still frees everything; what was on stays on afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _counting(hook: ProgressHook | None, name: str, total: int) -> Callable[[int], None] | None:
    if hook is None:
        return None
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        hook(name, "applying", done, total)

    return step

