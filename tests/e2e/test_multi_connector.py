"""A plan of several connectors through the installed command: a dry run plans a user two
connectors bring once, and a saved plan applies whole, in one transaction, or not at all."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config_file
from test_sync_cli import GROUPS, PEOPLE, RULES, Directory, RunSyncd, check_document, key

pytestmark = pytest.mark.e2e


@pytest.fixture
def two(tmp_path: Path, store_url: str) -> Path:
    """Two LDIF connectors, corp and lab, whose groups differ and whose users overlap."""
    corp = Directory()
    lab = Directory()
    lab.groups = {f"lab-{cn}": g for cn, g in lab.groups.items() if cn in ("sales", "support")}
    for cn, g in lab.groups.items():
        g.cn, g.uuid = cn, f"lab-{cn}"
    (tmp_path / "corp.ldif").write_text(corp.ldif(), encoding="utf-8")
    (tmp_path / "lab.ldif").write_text(lab.ldif(), encoding="utf-8")
    connector = {"type": "ldif", "schema": "rfc4519", "groups": {"base": GROUPS},
                 "users": {"base": PEOPLE}}
    return write_config_file(tmp_path, {
        "version": 1, "store": {"url": store_url}, "audit": {"file": "audit.jsonl"},
        "connectors": [{"name": "corp", "path": "corp.ldif", **connector},
                       {"name": "lab", "path": "lab.ldif", **connector}],
        "rules": RULES})


def syncd_json(run_syncd: RunSyncd, config: Path, *args: str | Path,
               code: int = 0) -> dict[str, Any]:
    result = run_syncd(*args, "--format", "json", config=config)
    assert result.code == code, result
    doc: dict[str, Any] = json.loads(result.stdout)
    check_document(doc)
    return doc


def test_a_user_two_connectors_bring_is_planned_once(run_syncd: RunSyncd, two: Path) -> None:
    doc = syncd_json(run_syncd, two, "sync", "--dry-run")
    created = Counter(c["user"] for c in doc["changes"] if c["op"] in ("create_user",
                                                                        "invite_user"))
    assert created and set(created.values()) == {1}
    assert "dave" in created  # in both directories' sales groups


def test_a_plan_of_two_connectors_applies_whole(run_syncd: RunSyncd, two: Path,
                                                tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    planned = syncd_json(run_syncd, two, "sync", "--dry-run", "--plan-out", plan)
    assert set(planned["connectors"]) == {"corp", "lab"}
    applied = syncd_json(run_syncd, two, "apply", plan)
    assert applied["status"] == "applied"
    assert applied["summary"] == planned["summary"]
    records = [json.loads(line) for line in run_syncd(
        "audit", "--run", planned["run_id"], "--format", "json", config=two).stdout.splitlines()]
    assert Counter(key(r) for r in records) == Counter(key(c) for c in planned["changes"])
    again = syncd_json(run_syncd, two, "sync", "--dry-run")
    assert again["status"] == "no_changes"
    # the plan is spent: the store moved on since it was made
    stale = syncd_json(run_syncd, two, "apply", plan, code=3)
    assert {b["check"] for b in stale["blocked_by"]} == {"stale_plan"}


def test_a_plan_of_two_connectors_applies_nothing_when_one_is_stale(
        run_syncd: RunSyncd, two: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    syncd_json(run_syncd, two, "sync", "--dry-run", "--plan-out", plan)
    assert run_syncd("sync", "lab", config=two).code == 0  # lab moves on alone
    stale = syncd_json(run_syncd, two, "apply", plan, code=3)
    # the users lab made are in the state both plans read
    assert {b["check"] for b in stale["blocked_by"]} == {"stale_plan"}
    groups = json.loads(run_syncd("groups", "list", "--format", "json", config=two).stdout)
    assert {g["source"] for g in groups} == {"lab"}  # nothing of corp was applied
