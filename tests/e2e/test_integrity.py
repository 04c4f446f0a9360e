"""Safety and integrity through the installed command: limits that hold by default, exit
codes that tell the truth, and an audit trail that is complete and only true (the file
equals the store; saved plans apply only to the store and config they were made for).

The workspace (config, LDIF directory, store) is ``test_sync_cli``'s.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import run_syncd_command, syncd_command
from test_sync_cli import (
    ENG,
    SALES,
    Group,
    RunSyncd,
    Workspace,
    check_audit,
    check_document,
    key,
)

from syncd import lease
from syncd.plan import change_from_json, checksum_of
from syncd.store.db import open_engine

pytestmark = pytest.mark.e2e


@pytest.fixture
def ws(tmp_path: Path, run_syncd: RunSyncd) -> Workspace:
    """A workspace whose config has no safety block (the defaults hold), on SQLite: what
    these tests check happens above the database."""
    return Workspace(tmp_path, f"sqlite:///{tmp_path / 'state' / 'syncd.db'}", run_syncd)


@pytest.fixture
def both(tmp_path: Path, store_url: str, run_syncd: RunSyncd) -> Workspace:
    """The same on SQLite and PostgreSQL, where the database takes part (concurrent runs,
    leases, the rows a deletion takes)."""
    return Workspace(tmp_path, store_url, run_syncd)


def store_audit(ws: Workspace) -> list[dict[str, Any]]:
    result = ws.syncd("audit", "--format", "json")
    assert result.code == 0, result
    return [json.loads(line) for line in result.stdout.splitlines()]


def one_line_error(result: Any, *parts: str) -> None:
    """A failure told in one line on stderr (logs aside), naming what it is about."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("syncd: error:")]
    assert len(errors) == 1, result.stderr
    for part in parts:
        assert part in errors[0], errors[0]
    assert "Traceback" not in result.stderr


# -- deletion is guarded by default ----------------------------------------------------------


def test_a_typo_in_a_rule_is_stopped_by_the_default_limits(ws: Workspace) -> None:
    for i in range(30):
        ws.directory.groups[f"team{i}"] = Group(f"team{i}", SALES, ["alice"])
    ws.write()
    ws.sync()
    rules = json.loads(json.dumps(ws_rules(ws)))
    rules[-1]["when"] = {"attribute": {"name": "businessCategory", "equals": "synk"}}  # typo
    ws.config = ws.write_config(rules, {})
    before = ws.tables()
    doc = ws.sync(code=3)
    assert doc["blocked_by"] == [{"check": "max_group_deletes", "limit": 25, "planned": 32}]
    for name in ("groups", "memberships", "users"):
        assert ws.tables()[name] == before[name]
    # "100%" turns the limit off: the same run is applied
    ws.config = ws.write_config(rules, {"max_group_deletes": "100%"})
    applied = ws.sync()
    assert applied["summary"]["delete_group"] == 32
    check_audit(ws, applied)


def ws_rules(ws: Workspace) -> list[dict[str, Any]]:
    import yaml

    rules: list[dict[str, Any]] = yaml.safe_load(ws.config.read_text(encoding="utf-8"))["rules"]
    return rules


def test_a_directory_of_one_group_that_returns_none_is_blocked(ws: Workspace) -> None:
    ws.directory.groups = {"sales": ws.directory.groups["sales"]}
    ws.write()
    ws.sync()
    ws.directory.groups = {}
    ws.write()
    before = ws.tables()
    doc = ws.sync(code=3)
    (blocked,) = doc["blocked_by"]
    assert {k: blocked[k] for k in ("check", "limit", "planned")} == {
        "check": "shrink_guard", "limit": 1, "planned": 0}
    assert ws.tables()["groups"] == before["groups"]


# -- exit codes that tell the truth ---------------------------------------------------------


def test_an_unwritable_plan_out_stops_the_run_before_it_applies(ws: Workspace) -> None:
    ws.sync()
    ws.directory.groups["sales"].members.append("carol")
    ws.write()
    blocker = ws.root / "plans"
    blocker.write_text("a file where a folder should be", encoding="utf-8")
    before, records = ws.tables(), store_audit(ws)
    result = ws.syncd("sync", "--plan-out", blocker / "plan.json")
    assert result.code == 2, result
    one_line_error(result, "--plan-out", "plans/plan.json", "nothing was applied")
    assert ws.tables()["memberships"] == before["memberships"]
    assert store_audit(ws) == records


def test_an_unwritable_audit_file_stops_the_run_before_it_applies(ws: Workspace) -> None:
    ws.sync()
    ws.directory.groups["sales"].members.append("carol")
    ws.write()
    before = ws.tables()
    (ws.root / "state" / "audit.jsonl").unlink()
    (ws.root / "state" / "audit.jsonl").mkdir()  # a folder where the file should be
    result = ws.syncd("sync")
    assert result.code == 2, result
    one_line_error(result, "audit.file", "audit.jsonl", "nothing was changed")
    assert ws.tables()["memberships"] == before["memberships"]
    assert ws.syncd("sync", "--dry-run").code == 0  # a dry run writes no record


# -- the audit trail: complete and only true --------------------------------------------------


def test_the_audit_file_catches_up_with_the_store(ws: Workspace, run_syncd: RunSyncd) -> None:
    plain = ws.write_config(ws_rules(ws), {}, name="no-file.yaml")
    text = plain.read_text(encoding="utf-8").replace("file: state/audit.jsonl", "file: null")
    plain.write_text(text, encoding="utf-8")
    first = run_syncd("sync", "--format", "json", config=plain, cwd=ws.root)
    assert first.code == 0, first
    assert not ws.audit_path.exists()  # records in the store only, as after a kill
    added = ws.syncd("members", "add", "sales", "zed")  # the next command catches up
    assert added.code == 0, added
    lines = ws.audit_file()
    assert lines == store_audit(ws)
    assert Counter(r["op"] for r in lines)["add_member"] == 12  # 11 synced, 1 by hand


def test_a_deleted_group_takes_its_manual_members_each_with_a_record(both: Workspace) -> None:
    both.sync()
    assert both.syncd("members", "add", "sales", "zed", "--role", "owner").code == 0
    del both.directory.groups["sales"]
    both.write()
    doc = both.sync()
    assert sorted(key(c) for c in doc["changes"]) == [
        ("delete_group", "sales", None), ("remove_member", "sales", "bob"),
        ("remove_member", "sales", "dave"), ("remove_member", "sales", "zed")]
    check_audit(both, doc)
    zed = next(r for r in both.audit(doc["run_id"]) if r["user"] == "zed")
    assert zed["before"] == {"role": "owner", "status": "accepted", "origin": "manual"}
    assert both.syncd("users", "show", "zed").code == 0  # the user stays


def test_a_lease_held_elsewhere_stops_a_sync_with_one_line(both: Workspace) -> None:
    both.sync()
    engine = open_engine(both.store_url)
    try:
        assert lease.acquire(engine, lease.connector_lease("corp"), "ldap-2.example.org:4242",
                             lease.RUN_TTL)
    finally:
        engine.dispose()
    both.directory.groups["sales"].members.append("carol")
    both.write()
    before = both.tables()
    doc = both.sync(code=1)
    assert "being synced by ldap-2.example.org:4242" in doc["connectors"]["corp"]["error"]
    assert both.tables()["memberships"] == before["memberships"]
    assert both.sync("--dry-run")["status"] == "planned"  # planning needs no lease


def test_two_syncs_at_once_apply_and_audit_each_change_once(both: Workspace) -> None:
    for i in range(40):
        both.directory.groups[f"team{i}"] = Group(f"team{i}", ENG, ["alice", "bob", "carol"],
                                                description=f"team {i}")
    both.write()
    both.sync("--force")
    for i in range(40):
        both.directory.groups[f"team{i}"].members.remove("bob")
    both.write()
    argv = [*syncd_command(), "-c", str(both.config), "sync", "--force", "--format", "json"]
    procs = [subprocess.Popen(argv, cwd=both.root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    docs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, 1), err
        doc = json.loads(out)
        check_document(doc)
        docs.append(doc)
    applied = [d for d in docs if d["status"] == "applied"]
    assert len(applied) == 1, [(d["status"], d["connectors"]) for d in docs]
    other = next(d for d in docs if d is not applied[0])
    assert other["status"] in ("failed", "no_changes")
    removals = Counter(key(r) for r in store_audit(both) if r["op"] == "remove_member")
    assert removals == Counter(("remove_member", f"eng-team{i}", "bob") for i in range(40))
    assert both.audit_file() == store_audit(both)


# -- saved plans name the store and config they were made for ------------------------------


def plan_for(ws: Workspace) -> Path:
    ws.sync()
    ws.directory.groups["sales"].members.append("carol")
    ws.write()
    plan = ws.root / "plan.json"
    ws.sync("--dry-run", "--plan-out", plan)
    return plan


def test_a_plan_for_another_store_is_refused(tmp_path: Path, run_syncd: RunSyncd) -> None:
    # two empty stores have the same state: only the store's own id tells them apart
    one = Workspace(tmp_path / "one", f"sqlite:///{tmp_path / 'one.db'}", run_syncd)
    two = Workspace(tmp_path / "two", f"sqlite:///{tmp_path / 'two.db'}", run_syncd)
    plan = tmp_path / "plan.json"
    one.sync("--dry-run", "--plan-out", plan)
    assert two.syncd("db", "upgrade").code == 0
    doc = two.apply(plan, code=3)
    (blocked,) = doc["blocked_by"]
    assert blocked["check"] == "stale_plan"
    assert "another store" in blocked["detail"]
    assert two.tables()["groups"] == []
    table = two.syncd("apply", plan)
    assert table.code == 3
    assert "make a new plan" in table.stdout
    assert "--force" not in table.stdout.splitlines()[-1]


def test_a_plan_from_another_config_is_refused(ws: Workspace) -> None:
    plan = plan_for(ws)
    rules = ws_rules(ws)
    rules[-1]["group"] = {"description": "changed: {description}"}
    ws.config = ws.write_config(rules, {})
    doc = ws.apply(plan, code=3)
    assert [b["check"] for b in doc["blocked_by"]] == ["config_changed"]
    assert "carol" not in ws.groups()["sales"]


def forge(plan: Path, edit: Any) -> None:
    """Edit a plan file and recompute its checksums, as a forger would (a change syncd
    cannot read gets none: the file's own checksum is checked first)."""
    doc = json.loads(plan.read_text(encoding="utf-8"))
    edit(doc)
    with contextlib.suppress(AssertionError, KeyError, TypeError):
        doc["checksum"] = checksum_of(change_from_json(c).to_json()
                                      for cp in doc["connectors"].values()
                                      for c in cp["changes"])
    doc.pop("file_checksum")
    doc["file_checksum"] = checksum_of([doc])
    plan.write_text(json.dumps(doc), encoding="utf-8")


def test_a_forged_change_for_a_manual_group_is_an_error_and_no_record(ws: Workspace) -> None:
    plan = plan_for(ws)
    assert ws.syncd("groups", "create", "handmade").code == 0
    assert ws.syncd("members", "add", "handmade", "alice").code == 0
    manual = ws.group("handmade")
    assert ws.sync("--dry-run", "--plan-out", plan)["status"] == "planned"
    records, before = store_audit(ws), ws.tables()

    def delete_handmade(doc: dict[str, Any]) -> None:
        doc["connectors"]["corp"]["changes"] = [
            {"op": "delete_group", "group": "handmade", "source": "corp", "rule": "company",
             "key": manual["id"]}]

    forge(plan, delete_handmade)
    result = ws.syncd("apply", plan)
    assert result.code == 2, result
    one_line_error(result, str(plan), "delete_group", "found nothing to change",
                   "nothing was applied")
    assert store_audit(ws) == records
    for name in ("groups", "memberships", "users"):
        assert ws.tables()[name] == before[name]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, str]:
    """A synced workspace and a plan saved for it, made once: the tests below spoil copies
    of the plan, which ``syncd apply`` refuses before it changes anything."""
    root = tmp_path_factory.mktemp("planned")

    def run(*args: str | Path, config: Path | None = None, cwd: Path | None = None,
            **kw: Any) -> Any:
        return run_syncd_command(*args, config=config, cwd=cwd or root, **kw)

    w = Workspace(root, f"sqlite:///{root / 'state' / 'syncd.db'}", run)
    return w, plan_for(w).read_text(encoding="utf-8")


def spoiled(planned: tuple[Workspace, str], tmp_path: Path, edit: Any) -> Path:
    plan = tmp_path / "plan.json"
    plan.write_text(planned[1], encoding="utf-8")
    forge(plan, edit)
    return plan


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c.update(op="drop_everything"), "unknown op 'drop_everything'"),
    (lambda c: c.pop("user"), "(add_member) has no 'user'"),
    (lambda c: c.update(role=["owner"]), "'role' has the wrong type"),
    (lambda c: c.update(surprise=1), "unknown field(s) surprise"),
], ids=["unknown-op", "missing-field", "wrong-type", "unknown-field"])
def test_a_malformed_change_is_one_line_and_exit_2(planned: tuple[Workspace, str],
                                                   tmp_path: Path, edit: Any,
                                                   message: str) -> None:
    w = planned[0]
    before = w.tables()

    def spoil(doc: dict[str, Any]) -> None:
        edit(doc["connectors"]["corp"]["changes"][0])

    plan = spoiled(planned, tmp_path, spoil)
    result = w.syncd("apply", plan)
    assert result.code == 2, result
    one_line_error(result, str(plan), "change 1", message)
    assert w.tables() == before


def test_a_plan_of_an_earlier_version_asks_for_a_new_one(planned: tuple[Workspace, str],
                                                        tmp_path: Path) -> None:
    def old(doc: dict[str, Any]) -> None:
        doc["version"] = 1

    result = planned[0].syncd("apply", spoiled(planned, tmp_path, old))
    assert result.code == 2, result
    one_line_error(result, "version 1", "make a new plan")


def test_the_stale_verdict_says_what_to_do(ws: Workspace) -> None:
    plan = plan_for(ws)
    assert ws.syncd("members", "add", "sales", "zed").code == 0
    result = ws.syncd("apply", plan)
    assert result.code == 3
    verdict = result.stdout.strip().splitlines()[-1]
    assert "make a new plan" in verdict
    assert "--force" not in verdict
    forced = run_syncd_command("apply", plan, "--force", config=ws.config, cwd=ws.root)
    assert forced.code == 3  # --force does not override a stale plan
