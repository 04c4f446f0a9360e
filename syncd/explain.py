"""``syncd explain``: which rule decides one source group, and why earlier ones did not."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from syncd import mirror
from syncd.audit import AuditWriter
from syncd.config.model import Config
from syncd.engine import RunOptions, SyncEngine
from syncd.errors import UsageError
from syncd.index import SourceIndex
from syncd.rules import (
    Evaluator,
    MemberResolver,
    Warning,
    desired_groups,
    explain,
    rules_for,
)


def explain_group(cfg: Config, engine: Engine, connector_name: str, group: str,
                  ) -> dict[str, Any]:
    """The explanation as a JSON-ready dict; from the mirror when there is one."""
    sync = SyncEngine(cfg, engine, AuditWriter(None))  # reads only: writes no records
    connector = sync.connector(connector_name, cfg.rules)
    try:
        with engine.connect() as conn:
            mirrored = mirror.info(conn, connector_name)
            index: SourceIndex | None = None
            if mirrored is not None and not mirrored.missing(connector.needed_attributes):
                index = mirror.load_index(conn, connector_name, connector.needed_attributes)
        source = "mirror of the last complete snapshot"
        if index is None:  # never synced, or the rules read attributes the mirror lacks
            index = sync.pull(connector, RunOptions(full=True)).index
            source = "source"
    finally:
        connector.close()
    try:
        ref: str | None = connector.normalise_ref(group)
    except ValueError:
        ref = None
    pos = index.find_group(group, ref)
    if pos is None:
        raise UsageError(f"connector {connector_name!r} has no group {group!r} (give its name, "
                         "DN or id; a name shared by several groups needs the DN)")
    evaluator = Evaluator(index, connector.normalise_ref)
    decisions = explain(cfg.rules, connector_name, evaluator, pos)
    g = index.groups[pos]
    decision: dict[str, Any] = {"action": "out_of_scope", "rule": None}
    if decisions and decisions[-1].matched:
        rule_name = decisions[-1].rule
        rule = next(r for r in cfg.rules if r.name == rule_name)
        decision = {"action": rule.action, "rule": rule_name}
        if rule.action == "sync":
            only = [r for r in rules_for(cfg.rules, connector_name) if r is rule]
            warnings: list[Warning] = []
            desired = next((d for d in desired_groups(only, connector_name, evaluator,
                                                      warnings) if d.pos == pos), None)
            if desired is None:  # its name renders empty: the rule decides, but skips it
                decision.update(action="skip", reason=warnings[-1].message)
            else:
                members = MemberResolver(index, connector.normalise_ref, []).members(desired)
                decision.update(group=desired.name, description=desired.description,
                                kind=desired.kind, organisation=desired.organisation,
                                members=len(members))
    return {
        "connector": connector_name,
        "from": source,
        "group": {"dn": g.dn, "name": g.name, "id": g.external_id,
                  "direct_members": index.direct_count(pos)},
        "rules": [{"rule": d.rule, "matched": d.matched, "reason": d.reason}
                  for d in decisions],
        "decision": decision,
    }
