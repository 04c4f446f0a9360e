"""Renderers of a run's plan: a table for people, JSON for machines, a plan file."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from syncd.engine import RunResult
from syncd.errors import UsageError
from syncd.plan import (
    AddMember,
    Blocked,
    Change,
    ChangeRole,
    ConnectorPlan,
    CreateGroup,
    CreateUser,
    Plan,
    RemoveMember,
    SetMemberStatus,
    UpdateGroup,
    change_from_json,
    checksum_of,
)

PLAN_FORMAT = "syncd-plan"
MEMBER_LINES = 25


def to_json(result: RunResult) -> dict[str, Any]:
    """The ``sync --format json`` document (CONTRACT section 4)."""
    plan = result.plan
    return {
        "run_id": plan.run_id,
        "dry_run": result.dry_run,
        "status": result.status,
        "connectors": {n: cp.report() for n, cp in plan.connectors.items()},
        "summary": plan.summary(),
        "changes": [c.to_json() for c in plan.changes],
        "blocked_by": [b.to_json() for b in plan.blocked_by()],
        "warnings": [w.to_json() for w in plan.warnings()],
        "checksum": plan.checksum(),
    }


# -- the table ---------------------------------------------------------------------------

_GROUP_MARK = {"create_group": ("+", "green"), "update_group": ("~", "yellow"),
               "delete_group": ("-", "red"), "archive_group": ("-", "red")}


def _member_line(c: Change) -> Text:
    if isinstance(c, AddMember):
        extra = "" if c.status == "accepted" else f", {c.status}"
        return Text(f"+ {c.user} ({c.role}{extra})", style="green")
    if isinstance(c, RemoveMember):
        return Text(f"- {c.user}", style="red")
    if isinstance(c, ChangeRole):
        return Text(f"~ {c.user}: role {c.old} -> {c.new}", style="yellow")
    if isinstance(c, SetMemberStatus):
        return Text(f"~ {c.user}: status {c.old} -> {c.new}", style="yellow")
    return Text(str(c.to_json()))


def _group_header(c: Change) -> Text:
    mark, style = _GROUP_MARK[c.op]
    group = getattr(c, "group", "")
    text = Text(f"{mark} {c.op} {group}", style=f"bold {style}")
    rule = getattr(c, "rule", None)
    if rule:
        text.append(f"  (rule {rule})", style="dim")
    if isinstance(c, CreateGroup):
        attrs = ", ".join(f"{k}: {v!r}" for k, v in c.attributes.items())
        text.append(f"\n      {attrs}")
    elif isinstance(c, UpdateGroup):
        for field, ch in c.fields.items():
            text.append(f"\n      {field}: {ch['old']!r} -> {ch['new']!r}")
    return text


def _connector_table(console: Console, cp: ConnectorPlan) -> None:
    head = (f"connector {cp.connector} ({cp.mode}): {cp.groups_seen} groups and "
            f"{cp.users_seen} users seen")
    if cp.status == "failed":
        console.print(Text(f"{head}\n  FAILED: {cp.error}", style="bold red"))
        return
    console.print(Text(head, style="bold"))
    for u in cp.changes:
        if isinstance(u, CreateUser):
            console.print(Text(f"  + {u.op} {u.user} <{u.email or ''}>"
                               f"{' (external)' if u.external else ''}", style="green"))
    # A plan may delete a group and create another under its name: a group name may head
    # several group changes.
    headers: dict[str, list[Change]] = defaultdict(list)
    members: dict[str, list[Change]] = defaultdict(list)
    for c in cp.changes:
        group = getattr(c, "group", None)
        if group is None:
            continue
        if c.op in _GROUP_MARK:
            headers[group].append(c)
        else:
            members[group].append(c)
    for group in sorted(set(headers) | set(members)):
        for header in headers.get(group, []):
            console.print(Text("  ").append(_group_header(header)))
        if group not in headers:
            console.print(Text(f"  ~ members of {group}", style="bold"))
        items = members.get(group, [])
        for c in items[:MEMBER_LINES]:
            console.print(Text("      ").append(_member_line(c)))
        if len(items) > MEMBER_LINES:
            console.print(Text(f"      ... and {len(items) - MEMBER_LINES} more member "
                               "changes (--format json lists all)", style="dim"))
    if not cp.changes:
        console.print("  no changes")


def print_table(console: Console, result: RunResult) -> None:
    """The plan for people: grouped by group, then counts, warnings and blocks."""
    plan = result.plan
    for cp in plan.connectors.values():
        _connector_table(console, cp)
    summary = plan.summary()
    table = Table(show_edge=False, header_style="bold", title=None)
    table.add_column("change")
    table.add_column("count", justify="right")
    for op, n in summary.items():
        if n:
            table.add_row(op, str(n))
    if any(summary.values()):
        console.print(table)
    for w in plan.warnings():
        console.print(Text(f"warning: {w.code}: {w.message}", style="yellow"))
    for b in plan.blocked_by():
        console.print(Text("blocked: " + _blocked_text(b), style="bold red"))
    verdict = {
        "planned": "dry run: nothing was applied",
        "applied": "applied",
        "no_changes": "nothing to do",
        "blocked": "blocked by a safety check: nothing was applied (--force overrides)",
        "failed": "failed: nothing was applied for the failed connector(s)",
    }[result.status]
    console.print(Text(f"{verdict} (run {plan.run_id}, {plan.checksum()})", style="bold"))


def _blocked_text(b: Blocked) -> str:
    text = b.check
    if b.limit is not None:
        text += f": {b.planned} planned, limit {b.limit}"
    if b.detail:
        text += f" ({b.detail})"
    return text


# -- plan files --------------------------------------------------------------------------

def _file_checksum(doc: dict[str, Any]) -> str:
    return checksum_of([{k: v for k, v in doc.items() if k != "file_checksum"}])


def write_plan_file(path: Path, result: RunResult, config_path: Path | None) -> None:
    """Save the plan with its checksum and the store state digest of each connector."""
    plan = result.plan
    doc: dict[str, Any] = {
        "format": PLAN_FORMAT,
        "version": 1,
        "run_id": plan.run_id,
        "created": datetime.now(UTC).isoformat(),
        "config": str(config_path) if config_path else None,
        "applied": sorted(result.applied),
        "connectors": {
            name: {"mode": cp.mode, "status": cp.status, "state_digest": cp.state_digest,
                   "blocked_by": [b.to_json() for b in cp.blocked_by],
                   "warnings": [w.to_json() for w in cp.warnings],
                   "groups_seen": cp.groups_seen, "users_seen": cp.users_seen,
                   "changes": [c.to_json(internal=True) for c in cp.changes]}
            for name, cp in plan.connectors.items() if cp.status != "failed"
        },
        "summary": plan.summary(),
        "checksum": plan.checksum(),
    }
    doc["file_checksum"] = _file_checksum(doc)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_plan_file(path: Path) -> tuple[Plan, dict[str, Any]]:
    """Load a saved plan; refuse a file that is not one or was altered."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read plan file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: not a plan file: {exc.msg}") from None
    if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
        raise UsageError(f"{path}: not a syncd plan file")
    if doc.get("version") != 1:
        raise UsageError(f"{path}: plan file version {doc.get('version')!r} is not supported")
    if doc.get("file_checksum") != _file_checksum(doc):
        raise UsageError(f"{path}: the plan file was altered (its checksum does not match)")
    plan = Plan(run_id=doc["run_id"])
    for name, data in doc["connectors"].items():
        cp = ConnectorPlan(name, data["mode"], status=data["status"],
                           state_digest=data["state_digest"],
                           groups_seen=data["groups_seen"], users_seen=data["users_seen"])
        cp.changes = [change_from_json(c) for c in data["changes"]]
        cp.blocked_by = [Blocked(**b) for b in data["blocked_by"]]
        plan.connectors[name] = cp
    if plan.checksum() != doc["checksum"]:
        raise UsageError(f"{path}: the plan's changes do not match its checksum")
    return plan, doc
