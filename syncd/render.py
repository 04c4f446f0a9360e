"""Renderers of a run's plan: a table for people, JSON for machines, a plan file."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import MISSING, dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from syncd.config.model import Config
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
    change_class,
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
        "blocked": _blocked_verdict(plan.blocked_by()),
        "failed": "failed: nothing was applied for the failed connector(s)",
    }[result.status]
    console.print(Text(f"{verdict} (run {plan.run_id}, {plan.checksum()})", style="bold"))


# Checks that say the plan no longer fits: no flag overrides them, a new plan does.
PLAN_CHECKS = ("stale_plan", "config_changed")


def _blocked_verdict(blocked: list[Blocked]) -> str:
    if any(b.check in PLAN_CHECKS for b in blocked):
        return ("the plan no longer fits the store or the config: nothing was applied; make a "
                "new plan (syncd sync --plan-out FILE), check it, and apply that one")
    return ("blocked by a safety check: nothing was applied; check the plan, then run again "
            "with --force to apply it anyway, or raise the limit (docs/safety.md)")


def _blocked_text(b: Blocked) -> str:
    text = b.check
    if b.limit is not None:
        text += f": {b.planned} planned, limit {b.limit}"
    if b.detail:
        text += f" ({b.detail})"
    return text


# -- plan files --------------------------------------------------------------------------

PLAN_VERSION = 2  # 2: the store id and the config digest


@dataclass(frozen=True)
class PlanOrigin:
    """What a saved plan was made for: the store (its id) and the config (path, digest)."""

    store_id: str
    config_path: str | None
    config_digest: str


def config_digest(cfg: Config) -> str:
    """The digest of what in a config shapes a plan: connectors, rules, roles and safety
    (secrets masked; comments, layout, the audit file and the store URL left out: the
    store is named by its id)."""
    shaping = cfg.model_dump(mode="json", include={"connectors", "rules", "custom_roles",
                                                   "safety"})
    return checksum_of([shaping])


def _file_checksum(doc: dict[str, Any]) -> str:
    return checksum_of([{k: v for k, v in doc.items() if k != "file_checksum"}])


def write_plan_file(path: Path, result: RunResult, cfg: Config) -> None:
    """Save the plan with its checksum, the store state digest of each connector, and the
    store and config it was made for."""
    plan = result.plan
    doc: dict[str, Any] = {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "run_id": plan.run_id,
        "created": datetime.now(UTC).isoformat(),
        "store_id": result.store_id,
        "config": {"path": str(cfg.path) if cfg.path else None,
                   "digest": config_digest(cfg)},
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
    tmp = _tmp_path(path)
    tmp.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def check_plan_path(path: Path) -> None:
    """Refuse, before anything is applied, a plan file path that cannot be written."""
    tmp = _tmp_path(path)
    try:
        tmp.open("w", encoding="utf-8").close()
        tmp.unlink()
    except OSError as exc:
        raise UsageError(f"--plan-out {path}: cannot write it: {exc.strerror or exc}; "
                         "nothing was applied") from None


def _tmp_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


class _Invalid(Exception):
    """What is wrong with a plan file's content."""


def read_plan_file(path: Path) -> tuple[Plan, PlanOrigin]:
    """Load a saved plan; refuse a file that is not one, was altered, or is malformed."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read plan file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not a plan file: not UTF-8 text (byte "
                         f"{exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: not a plan file: {exc.msg}") from None
    if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
        raise UsageError(f"{path}: not a syncd plan file")
    if doc.get("version") == 1:
        raise UsageError(f"{path}: plan file version 1 names neither the store nor the config "
                         "it was made for: make a new plan with `syncd sync --plan-out`")
    if doc.get("version") != PLAN_VERSION:
        raise UsageError(f"{path}: plan file version {doc.get('version')!r} is not supported")
    if doc.get("file_checksum") != _file_checksum(doc):
        raise UsageError(f"{path}: the plan file was altered (its checksum does not match)")
    try:
        plan, origin = _plan_of(doc)
    except _Invalid as exc:
        raise UsageError(f"{path}: not a valid plan file: {exc}") from None
    if plan.checksum() != doc["checksum"]:
        raise UsageError(f"{path}: the plan's changes do not match its checksum")
    return plan, origin


def _plan_of(doc: dict[str, Any]) -> tuple[Plan, PlanOrigin]:
    config = _typed(doc, "config", dict, "the plan")
    origin = PlanOrigin(_typed(doc, "store_id", str, "the plan"),
                        _typed(config, "path", (str, type(None)), "config"),
                        _typed(config, "digest", str, "config"))
    plan = Plan(run_id=_typed(doc, "run_id", str, "the plan"))
    _typed(doc, "checksum", str, "the plan")
    for name, data in _typed(doc, "connectors", dict, "the plan").items():
        where = f"connector {name!r}"
        if not isinstance(data, dict):
            raise _Invalid(f"{where} is not a mapping")
        cp = ConnectorPlan(name, _typed(data, "mode", str, where),
                           status=_typed(data, "status", str, where),
                           state_digest=_typed(data, "state_digest", str, where),
                           groups_seen=_typed(data, "groups_seen", int, where),
                           users_seen=_typed(data, "users_seen", int, where))
        cp.changes = [_change(c, f"{where}, change {i + 1}")
                      for i, c in enumerate(_typed(data, "changes", list, where))]
        cp.blocked_by = [_blocked(b, f"{where}, blocked_by {i + 1}")
                         for i, b in enumerate(_typed(data, "blocked_by", list, where))]
        plan.connectors[name] = cp
    return plan, origin


def _typed(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise _Invalid(f"{where} has no {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _Invalid(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


# The Python types of the change fields' annotations (the plan module's, as text).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "str | None": (str, type(None)), "bool": (bool,),
    "dict[str, Any]": (dict,), "dict[str, dict[str, Any]]": (dict,),
}


def _change(data: Any, where: str) -> Change:
    """A change of a plan file, checked field by field against its class."""
    if not isinstance(data, dict):
        raise _Invalid(f"{where} is not a mapping")
    cls = change_class(data)
    if cls is None:
        raise _Invalid(f"{where}: unknown op {data.get('op')!r}")
    known = {f.name: f for f in dataclass_fields(cls)}
    unknown = sorted(set(data) - {"op", *known})
    if unknown:
        raise _Invalid(f"{where} ({cls.op}): unknown field(s) {', '.join(unknown)}")
    for name, f in known.items():
        if name not in data:
            if f.default is MISSING:
                raise _Invalid(f"{where} ({cls.op}) has no {name!r}")
            continue
        if not isinstance(data[name], _FIELD_TYPES[str(f.type)]):
            raise _Invalid(f"{where} ({cls.op}): {name!r} has the wrong type "
                           f"({type(data[name]).__name__})")
    if cls is CreateGroup:
        _check_attributes(data["attributes"], f"{where} (create_group)")
    elif cls is UpdateGroup:
        _check_fields(data["fields"], f"{where} (update_group)")
    return change_from_json(data)


GROUP_ATTRIBUTES = {"description": (str,), "kind": (str,), "organisation": (str,),
                    "icon": (str, type(None))}
GROUP_FIELDS = {"name", "description", "kind", "organisation", "icon", "managed", "source",
                "external_id", "rule", "archived"}


def _check_attributes(attributes: dict[str, Any], where: str) -> None:
    for key, kinds in GROUP_ATTRIBUTES.items():
        if key not in attributes and key != "icon":
            raise _Invalid(f"{where}: attributes have no {key!r}")
        if key in attributes and not isinstance(attributes[key], kinds):
            raise _Invalid(f"{where}: attribute {key!r} has the wrong type")
    unknown = sorted(set(attributes) - set(GROUP_ATTRIBUTES))
    if unknown:
        raise _Invalid(f"{where}: unknown attribute(s) {', '.join(unknown)}")


def _check_fields(fields: dict[str, Any], where: str) -> None:
    for key, change in fields.items():
        if key not in GROUP_FIELDS:
            raise _Invalid(f"{where}: unknown field {key!r}")
        if not isinstance(change, dict) or set(change) != {"old", "new"}:
            raise _Invalid(f"{where}: field {key!r} is not {{old, new}}")


def _blocked(data: Any, where: str) -> Blocked:
    if not isinstance(data, dict) or not isinstance(data.get("check"), str) \
            or set(data) - {"check", "limit", "planned", "detail"}:
        raise _Invalid(f"{where} is not a safety check")
    return Blocked(**data)
