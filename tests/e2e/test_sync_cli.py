"""``syncd sync``, ``apply``, ``explain`` and ``audit`` end to end, through the installed
command, on small LDIF directories written into tmp_path and edited between runs
(CONTRACT sections 3, 4 and 5).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Result, write_config_file
from sqlalchemy import insert, select

from syncd.store.db import open_engine
from syncd.store.schema import tables

pytestmark = pytest.mark.e2e

RunSyncd = Callable[..., Result]
REPO_ROOT = Path(__file__).resolve().parents[2]

BASE = "dc=example,dc=org"
GROUPS = f"ou=groups,{BASE}"
ENG = f"ou=engineering,{GROUPS}"
SALES = f"ou=sales,{GROUPS}"
PARTNERS = f"ou=partners,{GROUPS}"
BUILTIN = f"ou=builtin,{GROUPS}"
PEOPLE = f"ou=people,{BASE}"

OPS = ["create_group", "update_group", "delete_group", "archive_group", "add_member",
       "remove_member", "change_role", "set_member_status", "create_user", "invite_user"]
DOCUMENT_KEYS = {"run_id", "dry_run", "status", "connectors", "summary", "changes",
                 "blocked_by", "warnings", "checksum"}
CHANGE_KEYS = {
    "create_group": {"op", "group", "source", "external_id", "rule", "attributes"},
    "update_group": {"op", "group", "source", "rule", "fields"},
    "delete_group": {"op", "group", "source", "rule"},
    "archive_group": {"op", "group", "source", "rule"},
    "add_member": {"op", "group", "user", "role", "status", "rule"},
    "remove_member": {"op", "group", "user", "rule"},
    "change_role": {"op", "group", "user", "old", "new", "rule"},
    "set_member_status": {"op", "group", "user", "old", "new", "rule"},
    "create_user": {"op", "user", "email", "external", "source"},
    "invite_user": {"op", "user", "email", "external", "source"},
}
AUDIT_KEYS = ["ts", "run_id", "actor", "op", "group", "user", "rule", "source", "before",
              "after"]
STORE_TABLES = ["groups", "memberships", "users", "user_external_ids", "audit", "runs",
                "mirror_users", "mirror_groups", "cursors"]

RULES: list[dict[str, Any]] = [
    {"name": "skip-builtin", "when": {"dn": {"under": BUILTIN}}, "action": "skip"},
    {"name": "partners", "when": {"dn": {"under": PARTNERS}},
     "group": {"kind": "open"}, "roles": {"owner": {"attribute": "owner"}},
     "members": {"unknown_users": "invite"}},
    {"name": "engineering",
     "when": {"all": [{"dn": {"under": ENG}},
                      {"attribute": {"name": "businessCategory", "equals": "sync"}}]},
     "group": {"name": "eng-{name}"},
     "roles": {"owner": {"attribute": "owner"},
               "facilitator": {"group": f"cn=eng-leads,{ENG}"}},
     "on_source_delete": "archive"},
    {"name": "company", "when": {"attribute": {"name": "businessCategory", "equals": "sync"}},
     "roles": {"owner": {"attribute": "owner"}}},
]


# -- the directory -------------------------------------------------------------------------


@dataclass
class Person:
    uid: str
    ou: str = PEOPLE
    disabled: bool = False
    external: bool = False

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{self.ou}"


@dataclass
class Group:
    cn: str
    ou: str
    members: list[str] = field(default_factory=list)   # uids, or cn=... for a nested group
    owners: list[str] = field(default_factory=list)    # uids
    category: str | None = "sync"
    description: str = ""
    uuid: str = ""

    @property
    def dn(self) -> str:
        return f"cn={self.cn},{self.ou}"


class Directory:
    """A small company directory, written as LDIF in config/demo's style."""

    def __init__(self) -> None:
        self.people = {p.uid: p for p in [
            Person("alice"), Person("bob"), Person("carol"), Person("dave"),
            Person("erin", disabled=True),
            Person("pieter", ou=f"ou=partners,{PEOPLE}", external=True),
        ]}
        # partner-portal last: dave is created by sales before the partner rule could invite
        self.groups = {g.cn: g for g in [
            Group("eng-leads", ENG, ["carol"], category=None, description="Team leads"),
            Group("platform", ENG, ["alice", "bob", "carol", "erin"], ["alice"],
                  description="Platform team"),
            Group("frontend", ENG, ["bob", "carol"], ["carol"], description="Frontend team"),
            Group("sales", SALES, ["dave", "bob"], ["dave"], description="Sales team"),
            Group("support", SALES, ["alice", "dave"], ["dave"], description="Support desk"),
            Group("Domain Admins", BUILTIN, ["alice"], category=None),
            Group("partner-portal", PARTNERS, ["pieter", "dave"], ["dave"],
                  category="partners", description="Shared with partners"),
        ]}

    def member_dn(self, ref: str) -> str:
        if ref.startswith("cn="):
            return self.groups[ref[3:]].dn
        return self.people[ref].dn

    def ldif(self) -> str:
        out = ["# Example Ltd, written by tests/e2e/test_sync_cli.py", "version: 1", ""]
        for p in self.people.values():
            out += [f"dn: {p.dn}", "objectClass: top", "objectClass: inetOrgPerson",
                    f"uid: {p.uid}", f"cn: {p.uid.title()}", f"sn: {p.uid.title()}",
                    f"mail: {p.uid}@example.org",
                    f"employeeType: {'external' if p.external else 'staff'}"]
            if p.disabled:
                out.append("nsAccountLock: TRUE")
            out += [f"entryUUID: user-{p.uid}", ""]
        for g in self.groups.values():
            out += [f"dn: {g.dn}", "objectClass: top", "objectClass: groupOfNames",
                    f"cn: {g.cn}"]
            if g.description:
                out.append(f"description: {g.description}")
            out += [f"owner: {self.people[o].dn}" for o in g.owners]
            if g.category:
                out.append(f"businessCategory: {g.category}")
            out += [f"member: {self.member_dn(m)}" for m in g.members]
            out += [f"entryUUID: {g.uuid or 'group-' + g.cn.lower().replace(' ', '-')}", ""]
        return "\n".join(out)


# -- a workspace: config, directory, store ------------------------------------------------


class Workspace:
    """A config, its LDIF file and store in a directory; runs ``syncd -c CONFIG``."""

    def __init__(self, root: Path, store_url: str, run_syncd: RunSyncd,
                 safety: dict[str, Any] | None = None) -> None:
        self.root = root
        self.store_url = store_url
        self.run_syncd = run_syncd
        self.directory = Directory()
        self.ldif_path = root / "directory.ldif"
        self.audit_path = root / "state" / "audit.jsonl"
        self.config = self.write_config(RULES, safety or {})
        self.write()

    def write_config(self, rules: list[dict[str, Any]], safety: dict[str, Any],
                     name: str = "syncd.yaml") -> Path:
        return write_config_file(self.root, {
            "version": 1,
            "store": {"url": self.store_url},
            "audit": {"file": "state/audit.jsonl"},
            "safety": safety,
            "connectors": [{
                "name": "corp", "type": "ldif", "path": "directory.ldif", "schema": "rfc4519",
                "groups": {"base": GROUPS}, "users": {"base": PEOPLE},
                "attributes": {"user_disabled": {"name": "nsAccountLock", "equals": "TRUE"},
                               "user_external": {"name": "employeeType",
                                                 "equals": "external"}},
            }],
            "rules": rules,
        }, name=name)

    def write(self) -> None:
        self.ldif_path.write_text(self.directory.ldif(), encoding="utf-8")

    def syncd(self, *args: str | Path) -> Result:
        return self.run_syncd(*args, config=self.config, cwd=self.root)

    def sync(self, *args: str | Path, code: int = 0) -> dict[str, Any]:
        """``sync --format json``: check the exit code and the document's shape."""
        result = self.syncd("sync", "--format", "json", *args)
        assert result.code == code, result
        doc: dict[str, Any] = json.loads(result.stdout)
        check_document(doc)
        return doc

    def apply(self, plan: Path, *args: str, code: int = 0) -> dict[str, Any]:
        result = self.syncd("apply", plan, "--format", "json", *args)
        assert result.code == code, result
        doc: dict[str, Any] = json.loads(result.stdout)
        check_document(doc)
        return doc

    def audit(self, run_id: str) -> list[dict[str, Any]]:
        """The store's audit records of a run, via ``syncd audit --format json``."""
        result = self.syncd("audit", "--run", run_id, "--format", "json")
        assert result.code == 0, result
        return [json.loads(line) for line in result.stdout.splitlines()]

    def audit_file(self, run_id: str | None = None) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        records = [json.loads(line) for line in
                   self.audit_path.read_text(encoding="utf-8").splitlines()]
        return [r for r in records if run_id is None or r["run_id"] == run_id]

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the store's tables (empty lists for a store with no schema yet)."""
        engine = open_engine(self.store_url)
        try:
            with engine.connect() as conn:
                out = {}
                for name in STORE_TABLES:
                    t = tables[name]
                    out[name] = sorted(tuple(r) for r in conn.execute(
                        select(t).order_by(*t.primary_key.columns)))
                return out
        finally:
            engine.dispose()

    def groups(self) -> dict[str, dict[str, tuple[str, str, str]]]:
        """Every group with its members: name -> user -> (role, status, origin)."""
        listed = self.syncd("groups", "list", "--format", "json")
        assert listed.code == 0, listed
        out = {}
        for item in json.loads(listed.stdout):
            shown = self.syncd("groups", "show", item["name"], "--format", "json")
            assert shown.code == 0, shown
            g = json.loads(shown.stdout)
            out[g["name"]] = {m["user"]: (m["role"], m["status"], m["origin"])
                              for m in g["members"]}
        return out

    def group(self, name: str) -> dict[str, Any]:
        shown = self.syncd("groups", "show", name, "--format", "json")
        assert shown.code == 0, shown
        doc: dict[str, Any] = json.loads(shown.stdout)
        return doc


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'syncd.db'}"


@pytest.fixture
def ws(tmp_path: Path, sqlite_url: str, run_syncd: RunSyncd) -> Workspace:
    """A workspace on SQLite with no safety limits (the shrink guard at its default)."""
    return Workspace(tmp_path, sqlite_url, run_syncd)


# -- checks ------------------------------------------------------------------------------


def check_document(doc: dict[str, Any]) -> None:
    """``sync --format json`` exactly as CONTRACT section 4 shows it."""
    assert set(doc) == DOCUMENT_KEYS
    assert isinstance(doc["run_id"], str)
    assert doc["run_id"]
    assert isinstance(doc["dry_run"], bool)
    assert doc["status"] in ("planned", "applied", "no_changes", "blocked", "failed")
    assert list(doc["summary"]) == OPS
    assert all(isinstance(n, int) for n in doc["summary"].values())
    assert doc["summary"] == {op: sum(1 for c in doc["changes"] if c["op"] == op)
                              for op in OPS}
    for report in doc["connectors"].values():
        assert set(report) == {"mode", "status", "groups_seen", "users_seen", "error"}
    for change in doc["changes"]:
        assert set(change) == CHANGE_KEYS[change["op"]], change
    for blocked in doc["blocked_by"]:
        assert {"check"} <= set(blocked) <= {"check", "limit", "planned", "detail"}
    for warning in doc["warnings"]:
        assert set(warning) == {"code", "message"}
    assert doc["checksum"].startswith("sha256:")


def key(item: dict[str, Any]) -> tuple[str, str | None, str | None]:
    return item["op"], item.get("group"), item.get("user")


def check_audit(ws: Workspace, doc: dict[str, Any]) -> None:
    """The run's audit records, in the store and in the file, are its changes one for one."""
    records = ws.audit(doc["run_id"])
    assert Counter(key(r) for r in records) == Counter(key(c) for c in doc["changes"])
    for r in records:
        assert list(r) == AUDIT_KEYS
        assert (r["actor"], r["source"]) == ("sync:corp", "corp")
    assert ws.audit_file(doc["run_id"]) == records


def changes(doc: dict[str, Any], op: str) -> list[dict[str, Any]]:
    return [c for c in doc["changes"] if c["op"] == op]


def ops(doc: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    return sorted(key(c) for c in doc["changes"])


def nonzero(doc: dict[str, Any]) -> dict[str, int]:
    return {op: n for op, n in doc["summary"].items() if n}


FIRST_SYNC = {"create_group": 5, "add_member": 11, "create_user": 4, "invite_user": 1}
AFTER_FIRST_SYNC = {
    "eng-platform": {"alice": ("owner", "accepted", "sync"),
                     "bob": ("member", "accepted", "sync"),
                     "carol": ("facilitator", "accepted", "sync")},
    "eng-frontend": {"bob": ("member", "accepted", "sync"),
                     "carol": ("owner", "accepted", "sync")},
    "sales": {"dave": ("owner", "accepted", "sync"), "bob": ("member", "accepted", "sync")},
    "support": {"alice": ("member", "accepted", "sync"),
                "dave": ("owner", "accepted", "sync")},
    "partner-portal": {"pieter": ("member", "invited", "sync"),
                       "dave": ("owner", "accepted", "sync")},
}


# -- first sync and idempotence ----------------------------------------------------------


def test_first_sync_then_nothing_to_do(tmp_path: Path, store_url: str,
                                       run_syncd: RunSyncd) -> None:
    ws = Workspace(tmp_path, store_url, run_syncd)
    first = ws.sync()
    assert (first["status"], first["dry_run"]) == ("applied", False)
    assert first["connectors"] == {"corp": {"mode": "full", "status": "ok", "groups_seen": 7,
                                            "users_seen": 6, "error": None}}
    assert nonzero(first) == FIRST_SYNC
    assert first["blocked_by"] == []
    assert first["warnings"] == []
    assert ws.groups() == AFTER_FIRST_SYNC
    partner = ws.group("partner-portal")
    assert (partner["kind"], partner["managed"], partner["source"], partner["rule"],
            partner["external_id"]) == ("open", True, "corp", "partners",
                                        "group-partner-portal")
    check_audit(ws, first)

    again = ws.sync()
    assert (again["status"], again["changes"], again["summary"]) == (
        "no_changes", [], dict.fromkeys(OPS, 0))
    assert ws.audit(again["run_id"]) == []
    check = ws.sync("--check")
    assert (check["status"], check["dry_run"]) == ("no_changes", True)
    assert ws.groups() == AFTER_FIRST_SYNC


def test_first_sync_changes_in_detail(ws: Workspace) -> None:
    first = ws.sync()
    assert changes(first, "create_group")[0] == {
        "op": "create_group", "group": "eng-frontend", "source": "corp",
        "external_id": "group-frontend", "rule": "engineering",
        "attributes": {"description": "Frontend team", "kind": "standard",
                       "organisation": "default"}}
    assert {c["user"]: c for c in changes(first, "create_user")}["alice"] == {
        "op": "create_user", "user": "alice", "email": "alice@example.org",
        "external": False, "source": "corp"}
    assert changes(first, "invite_user") == [{
        "op": "invite_user", "user": "pieter", "email": "pieter@example.org",
        "external": True, "source": "corp"}]
    adds = {(c["group"], c["user"]): c for c in changes(first, "add_member")}
    assert adds[("eng-platform", "carol")] == {
        "op": "add_member", "group": "eng-platform", "user": "carol", "role": "facilitator",
        "status": "accepted", "rule": "engineering"}
    # erin is disabled and unknown to the store: neither created nor added
    assert all("erin" not in (c.get("user") or "") for c in first["changes"])


# -- every change type ---------------------------------------------------------------------


def test_every_change_type(ws: Workspace) -> None:
    ws.sync()
    d = ws.directory
    d.people["gina"] = Person("gina")
    d.people["katrin"] = Person("katrin", ou=f"ou=partners,{PEOPLE}", external=True)
    d.people["dave"].disabled = True                      # set_member_status x2
    d.groups["sales"].description = "Sales, all regions"  # update_group
    d.groups["sales"].members.append("carol")             # add_member
    d.groups["sales"].owners.append("bob")                # change_role
    d.groups["platform"].members.remove("bob")            # remove_member
    d.groups["platform"].members.append("gina")           # create_user, add_member
    d.groups["partner-portal"].members.append("katrin")   # invite_user, add_member
    del d.groups["support"]                               # delete_group (company)
    del d.groups["frontend"]                              # archive_group (engineering)
    ws.write()
    # A space whose audience is two groups, one of which the run deletes.
    audience = {"support": ws.group("support")["id"], "sales": ws.group("sales")["id"]}
    engine = open_engine(ws.store_url)
    with engine.begin() as conn:
        conn.execute(insert(tables["resources"]).values(
            id="r1", type="space", name="Customers", created_at=datetime.now(UTC)))
        conn.execute(insert(tables["resource_audiences"]),
                     [{"resource_id": "r1", "group_id": gid} for gid in audience.values()])

    before = ws.tables()
    pending = ws.sync("--check", code=4)
    assert pending["status"] == "planned"
    assert ws.tables() == before
    doc = ws.sync()
    assert doc["status"] == "applied"
    # support's two memberships go with it, each a remove_member of its own
    assert nonzero(doc) == {op: 1 for op in OPS if op != "create_group"} | {
        "add_member": 3, "set_member_status": 2, "remove_member": 3}
    assert ops(pending) == ops(doc)
    assert changes(doc, "update_group") == [{
        "op": "update_group", "group": "sales", "source": "corp", "rule": "company",
        "fields": {"description": {"old": "Sales team", "new": "Sales, all regions"}}}]
    assert changes(doc, "delete_group") == [{"op": "delete_group", "group": "support",
                                             "source": "corp", "rule": "company"}]
    assert changes(doc, "archive_group") == [{"op": "archive_group", "group": "eng-frontend",
                                              "source": "corp", "rule": "engineering"}]
    assert sorted(changes(doc, "remove_member"), key=key) == [
        {"op": "remove_member", "group": "eng-platform", "user": "bob", "rule": "engineering"},
        {"op": "remove_member", "group": "support", "user": "alice", "rule": "company"},
        {"op": "remove_member", "group": "support", "user": "dave", "rule": "company"}]
    assert changes(doc, "change_role") == [{"op": "change_role", "group": "sales",
                                            "user": "bob", "old": "member", "new": "owner",
                                            "rule": "company"}]
    assert sorted((c["group"], c["user"], c["old"], c["new"])
                  for c in changes(doc, "set_member_status")) == [
        ("partner-portal", "dave", "accepted", "deactivated"),
        ("sales", "dave", "accepted", "deactivated")]
    assert [c["user"] for c in changes(doc, "create_user")] == ["gina"]
    assert changes(doc, "invite_user")[0]["user"] == "katrin"
    assert sorted((c["group"], c["user"], c["status"]) for c in changes(doc, "add_member")) == [
        ("eng-platform", "gina", "accepted"), ("partner-portal", "katrin", "invited"),
        ("sales", "carol", "accepted")]
    check_audit(ws, doc)

    groups = ws.groups()
    assert "support" not in groups
    # Its memberships and audience link went with it; nothing points at a missing row.
    with engine.connect() as conn:
        assert conn.execute(select(tables["resource_audiences"].c.group_id)).scalars().all(
            ) == [audience["sales"]]
        assert not conn.execute(select(tables["memberships"]).where(
            tables["memberships"].c.group_id == audience["support"])).all()
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    engine.dispose()
    assert groups["eng-frontend"] == AFTER_FIRST_SYNC["eng-frontend"]  # archived, kept
    assert groups["sales"] == {"dave": ("owner", "deactivated", "sync"),
                               "bob": ("owner", "accepted", "sync"),
                               "carol": ("member", "accepted", "sync")}
    assert ws.group("sales")["description"] == "Sales, all regions"
    assert ws.sync("--check")["status"] == "no_changes"

    # dave is enabled again; frontend comes back
    d.people["dave"].disabled = False
    d.groups["frontend"] = Group("frontend", ENG, ["bob", "carol"], ["carol"],
                                 description="Frontend team")
    ws.write()
    back = ws.sync()
    assert sorted((c["group"], c["old"], c["new"])
                  for c in changes(back, "set_member_status")) == [
        ("partner-portal", "deactivated", "accepted"), ("sales", "deactivated", "accepted")]
    assert changes(back, "update_group") == [{
        "op": "update_group", "group": "eng-frontend", "source": "corp", "rule": "engineering",
        "fields": {"archived": {"old": True, "new": False}}}]
    assert nonzero(back) == {"set_member_status": 2, "update_group": 1}
    check_audit(ws, back)
    assert ws.sync("--check")["status"] == "no_changes"


def test_rename_is_kept_as_an_update(ws: Workspace) -> None:
    ws.sync()
    before = ws.group("eng-platform")
    platform = ws.directory.groups.pop("platform")
    platform.cn, platform.uuid = "platform-team", "group-platform"
    platform.members.append("dave")
    ws.directory.groups["platform-team"] = platform
    ws.write()
    doc = ws.sync()
    assert changes(doc, "update_group") == [{
        "op": "update_group", "group": "eng-platform", "source": "corp", "rule": "engineering",
        "fields": {"name": {"old": "eng-platform", "new": "eng-platform-team"}}}]
    # members of the renamed group carry the name it had before the change
    assert changes(doc, "add_member") == [{
        "op": "add_member", "group": "eng-platform", "user": "dave", "role": "member",
        "status": "accepted", "rule": "engineering"}]
    assert nonzero(doc) == {"update_group": 1, "add_member": 1}
    check_audit(ws, doc)
    after = ws.group("eng-platform-team")
    assert after["id"] == before["id"]
    assert len(after["members"]) == len(before["members"]) + 1
    assert "eng-platform" not in ws.groups()
    assert ws.sync("--check")["status"] == "no_changes"


def test_group_made_again_under_its_name_is_replaced_in_one_run(ws: Workspace) -> None:
    ws.sync()
    old_id = ws.group("sales")["id"]
    ws.directory.groups["sales"].uuid = "group-sales-again"  # deleted and added again
    ws.write()
    table = ws.syncd("sync", "--dry-run")
    assert table.code == 0, table
    assert "delete_group sales" in table.stdout
    assert "create_group sales" in table.stdout
    doc = ws.sync()
    assert nonzero(doc) == {"delete_group": 1, "create_group": 1, "add_member": 2,
                            "remove_member": 2}
    assert doc["warnings"] == []
    check_audit(ws, doc)
    sales = ws.group("sales")
    assert (sales["id"] != old_id, sales["external_id"]) == (True, "group-sales-again")
    assert ws.groups()["sales"] == AFTER_FIRST_SYNC["sales"]
    assert ws.sync("--check")["status"] == "no_changes"


def test_group_leaving_scope(ws: Workspace) -> None:
    ws.sync()
    ws.directory.groups["sales"].category = None     # company: deleted
    ws.directory.groups["platform"].category = None  # engineering: archived
    ws.write()
    doc = ws.sync()
    assert ops(doc) == [("archive_group", "eng-platform", None),
                        ("delete_group", "sales", None), ("remove_member", "sales", "bob"),
                        ("remove_member", "sales", "dave")]
    check_audit(ws, doc)
    groups = ws.groups()
    assert "sales" not in groups
    assert groups["eng-platform"] == AFTER_FIRST_SYNC["eng-platform"]
    assert ws.sync("--check")["status"] == "no_changes"


# -- safety --------------------------------------------------------------------------------


# what goes with the groups sales and support when they are deleted
MEMBERS_OF_SALES_AND_SUPPORT = [("remove_member", "sales", "bob"),
                                ("remove_member", "sales", "dave"),
                                ("remove_member", "support", "alice"),
                                ("remove_member", "support", "dave")]


def check_blocked(ws: Workspace, doc: dict[str, Any], before: dict[str, Any],
                  expected: list[dict[str, Any]]) -> None:
    """A blocked run: exit 3 (checked by the caller), the checks, one record, nothing else."""
    assert doc["status"] == "blocked"
    assert doc["connectors"]["corp"]["status"] == "blocked"
    assert doc["blocked_by"] == expected
    (record,) = ws.audit(doc["run_id"])
    assert (record["op"], record["actor"], record["source"]) == ("run_blocked", "sync:corp",
                                                                 "corp")
    assert record["extra"]["blocked_by"] == expected
    assert ws.audit_file(doc["run_id"]) == [record]
    now = ws.tables()
    for name in ("groups", "memberships", "users", "user_external_ids", "mirror_users",
                 "mirror_groups", "cursors"):
        assert now[name] == before[name], name


def test_max_group_deletes_count_blocks_then_force(tmp_path: Path, sqlite_url: str,
                                                   run_syncd: RunSyncd) -> None:
    ws = Workspace(tmp_path, sqlite_url, run_syncd, safety={"max_group_deletes": 1})
    ws.sync()
    del ws.directory.groups["sales"]
    del ws.directory.groups["support"]
    ws.write()
    before = ws.tables()
    doc = ws.sync(code=3)
    check_blocked(ws, doc, before, [{"check": "max_group_deletes", "limit": 1, "planned": 2}])
    # the plan is still shown (the groups' memberships go with them)
    assert nonzero(doc) == {"delete_group": 2, "remove_member": 4}

    forced = ws.sync("--force")
    assert forced["status"] == "applied"
    assert forced["blocked_by"] == []
    assert [w["code"] for w in forced["warnings"]] == ["safety_overridden"]
    assert ops(forced) == [("delete_group", "sales", None), ("delete_group", "support", None),
                           *MEMBERS_OF_SALES_AND_SUPPORT]
    check_audit(ws, forced)
    assert {"sales", "support"}.isdisjoint(ws.groups())


def test_max_member_removals_percent_blocks_then_force(tmp_path: Path, sqlite_url: str,
                                                       run_syncd: RunSyncd) -> None:
    ws = Workspace(tmp_path, sqlite_url, run_syncd, safety={"max_member_removals": "25%"})
    ws.sync()  # 11 memberships: 25% is 2 (rounded down)
    for cn in ("platform", "frontend", "sales"):
        ws.directory.groups[cn].members.remove("bob")
    ws.write()
    before = ws.tables()
    doc = ws.sync(code=3)
    check_blocked(ws, doc, before, [{"check": "max_member_removals", "limit": 2,
                                     "planned": 3}])
    forced = ws.sync("--force")
    assert nonzero(forced) == {"remove_member": 3}
    check_audit(ws, forced)
    assert all("bob" not in members for members in ws.groups().values())


def test_within_the_limits_nothing_is_blocked(tmp_path: Path, sqlite_url: str,
                                              run_syncd: RunSyncd) -> None:
    ws = Workspace(tmp_path, sqlite_url, run_syncd,
                   safety={"max_group_deletes": 1, "max_member_removals": "25%"})
    ws.sync()
    del ws.directory.groups["support"]
    ws.directory.groups["platform"].members.remove("bob")
    ws.write()
    doc = ws.sync()
    assert (doc["status"], doc["blocked_by"]) == ("applied", [])


def test_shrink_guard_blocks_a_source_that_lost_most_groups(ws: Workspace) -> None:
    ws.sync()
    ws.directory.groups = {"platform": ws.directory.groups["platform"]}
    ws.write()
    before = ws.tables()
    doc = ws.sync(code=3)
    assert doc["connectors"]["corp"]["groups_seen"] == 1
    (blocked,) = doc["blocked_by"]
    assert {k: blocked[k] for k in ("check", "limit", "planned")} == {
        "check": "shrink_guard", "limit": 4, "planned": 1}  # half of 7 groups is 3.5
    check_blocked(ws, doc, before, doc["blocked_by"])
    assert ws.groups() == AFTER_FIRST_SYNC


# -- dry runs and --check --------------------------------------------------------------------


def test_check_on_a_fresh_store_exits_4_and_writes_nothing(ws: Workspace) -> None:
    doc = ws.sync("--check", code=4)
    assert (doc["status"], doc["dry_run"]) == ("planned", True)
    assert nonzero(doc) == FIRST_SYNC
    assert all(rows == [] for rows in ws.tables().values())
    assert not ws.audit_path.exists()


def test_dry_run_writes_nothing(ws: Workspace) -> None:
    doc = ws.sync("--dry-run")
    assert (doc["status"], doc["dry_run"]) == ("planned", True)
    assert nonzero(doc) == FIRST_SYNC
    assert ws.tables() == {name: [] for name in STORE_TABLES}  # the empty schema only
    assert not ws.audit_path.exists()
    assert ws.audit(doc["run_id"]) == []

    applied = ws.sync()
    assert ops(applied) == ops(doc)
    del ws.directory.groups["support"]
    ws.directory.groups["sales"].members.append("alice")
    ws.write()
    before, audit_lines = ws.tables(), ws.audit_file()
    dry = ws.sync("--dry-run")
    assert nonzero(dry) == {"delete_group": 1, "add_member": 1, "remove_member": 2}
    assert ws.tables() == before
    assert ws.audit_file() == audit_lines


# -- saved plans -----------------------------------------------------------------------------


def edit_for_plan(ws: Workspace) -> None:
    ws.directory.groups["sales"].members.append("carol")
    ws.directory.groups["platform"].description = "Platform and tooling"
    ws.write()


def test_plan_out_then_apply(ws: Workspace) -> None:
    ws.sync()
    edit_for_plan(ws)
    plan = ws.root / "plan.json"
    planned = ws.sync("--dry-run", "--plan-out", plan)
    assert plan.exists()
    assert nonzero(planned) == {"add_member": 1, "update_group": 1}
    assert ws.audit(planned["run_id"]) == []

    applied = ws.apply(plan)
    assert (applied["status"], applied["run_id"]) == ("applied", planned["run_id"])
    assert applied["changes"] == planned["changes"]
    assert applied["checksum"] == planned["checksum"]
    check_audit(ws, applied)
    assert ws.groups()["sales"]["carol"] == ("member", "accepted", "sync")
    assert ws.group("eng-platform")["description"] == "Platform and tooling"
    assert ws.sync("--check")["status"] == "no_changes"


def test_stale_plan_is_refused(tmp_path: Path, store_url: str, run_syncd: RunSyncd) -> None:
    ws = Workspace(tmp_path, store_url, run_syncd)
    ws.sync()
    edit_for_plan(ws)
    plan = ws.root / "plan.json"
    planned = ws.sync("--dry-run", "--plan-out", plan)
    added = ws.syncd("members", "add", "eng-platform", "zed", "--email", "zed@example.org")
    assert added.code == 0, added
    before = ws.tables()

    doc = ws.apply(plan, code=3)
    assert doc["status"] == "blocked"
    assert [b["check"] for b in doc["blocked_by"]] == ["stale_plan"]
    assert set(doc["blocked_by"][0]) <= {"check", "detail"}
    now = ws.tables()
    for name in ("groups", "memberships", "users", "runs"):
        assert now[name] == before[name], name
    (record,) = ws.audit(planned["run_id"])
    assert record["op"] == "run_blocked"
    assert [b["check"] for b in record["extra"]["blocked_by"]] == ["stale_plan"]
    assert ws.groups()["eng-platform"]["zed"] == ("member", "accepted", "manual")
    assert "carol" not in ws.groups()["sales"]


def test_apply_refuses_an_altered_plan(ws: Workspace) -> None:
    ws.sync()
    edit_for_plan(ws)
    plan = ws.root / "plan.json"
    ws.sync("--dry-run", "--plan-out", plan)
    data = json.loads(plan.read_text(encoding="utf-8"))
    for change in data["connectors"]["corp"]["changes"]:
        if change["op"] == "add_member":
            change["role"] = "owner"
    plan.write_text(json.dumps(data), encoding="utf-8")
    before = ws.tables()
    result = ws.syncd("apply", plan)
    assert result.code == 2, result
    assert "altered" in result.stderr
    assert ws.tables() == before


def test_apply_of_a_blocked_plan_needs_force(tmp_path: Path, sqlite_url: str,
                                             run_syncd: RunSyncd) -> None:
    ws = Workspace(tmp_path, sqlite_url, run_syncd, safety={"max_group_deletes": 1})
    ws.sync()
    del ws.directory.groups["sales"]
    del ws.directory.groups["support"]
    ws.write()
    plan = ws.root / "plan.json"
    planned = ws.sync("--dry-run", "--plan-out", plan, code=3)
    assert planned["blocked_by"] == [{"check": "max_group_deletes", "limit": 1, "planned": 2}]
    before = ws.tables()
    refused = ws.apply(plan, code=3)
    assert refused["blocked_by"] == planned["blocked_by"]
    for name in ("groups", "memberships", "users"):
        assert ws.tables()[name] == before[name]
    forced = ws.apply(plan, "--force")
    assert forced["status"] == "applied"
    assert ops(forced) == [("delete_group", "sales", None), ("delete_group", "support", None),
                           *MEMBERS_OF_SALES_AND_SUPPORT]
    assert {"sales", "support"}.isdisjoint(ws.groups())
    records = [r for r in ws.audit(planned["run_id"]) if r["op"] != "run_blocked"]
    assert Counter(key(r) for r in records) == Counter(key(c) for c in forced["changes"])


# -- failures ------------------------------------------------------------------------------


def test_missing_ldif_fails_the_run_and_changes_nothing(ws: Workspace) -> None:
    ws.sync()
    ws.ldif_path.unlink()
    before = ws.tables()
    doc = ws.sync(code=1)
    assert doc["status"] == "failed"
    report = doc["connectors"]["corp"]
    assert report["status"] == "failed"
    assert "does not exist" in report["error"]
    assert str(ws.ldif_path) in report["error"]
    assert doc["changes"] == []
    (record,) = ws.audit(doc["run_id"])
    assert (record["op"], record["actor"]) == ("run_failed", "sync:corp")
    assert "does not exist" in record["extra"]["error"]
    assert ws.audit_file(doc["run_id"]) == [record]
    now = ws.tables()
    for name in ("groups", "memberships", "users", "mirror_users", "mirror_groups"):
        assert now[name] == before[name], name


def test_missing_ldif_on_a_dry_run_records_nothing(ws: Workspace) -> None:
    ws.ldif_path.unlink()
    doc = ws.sync("--dry-run", code=1)
    assert doc["status"] == "failed"
    assert all(rows == [] for rows in ws.tables().values())


# -- explain --------------------------------------------------------------------------------


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A copy of config/demo (config and LDIF) whose store is made in tmp_path."""
    shutil.copy(REPO_ROOT / "config" / "demo.yaml", tmp_path / "demo.yaml")
    (tmp_path / "demo").mkdir()
    shutil.copy(REPO_ROOT / "config" / "demo" / "directory.ldif",
                tmp_path / "demo" / "directory.ldif")
    return tmp_path / "demo.yaml"


def explain(run_syncd: RunSyncd, config: Path, group: str) -> dict[str, Any]:
    result = run_syncd("explain", "demo", group, "--format", "json", config=config)
    assert result.code == 0, result
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_explain_an_in_scope_group(demo: Path, run_syncd: RunSyncd) -> None:
    doc = explain(run_syncd, demo, "platform")
    assert doc["group"]["dn"] == f"cn=platform,{ENG}"
    assert [(r["rule"], r["matched"]) for r in doc["rules"]] == [
        ("skip-builtin", False), ("partners", False), ("engineering", True)]
    assert "none of 'any' matched" in doc["rules"][0]["reason"]
    assert "under" in doc["rules"][1]["reason"]
    assert doc["rules"][2]["reason"] is None
    decision = doc["decision"]
    assert (decision["action"], decision["rule"], decision["group"], decision["kind"]) == (
        "sync", "engineering", "eng-platform", "standard")
    assert decision["members"] > 0
    text = run_syncd("explain", "demo", f"cn=platform,{ENG}", config=demo)
    assert text.code == 0, text
    assert "synced by rule engineering as 'eng-platform'" in text.stdout


def test_explain_a_skipped_group(demo: Path, run_syncd: RunSyncd) -> None:
    doc = explain(run_syncd, demo, "Domain Admins")
    assert [(r["rule"], r["matched"]) for r in doc["rules"]] == [("skip-builtin", True)]
    assert doc["decision"] == {"action": "skip", "rule": "skip-builtin"}


def test_explain_an_out_of_scope_group(demo: Path, run_syncd: RunSyncd) -> None:
    doc = explain(run_syncd, demo, "eng-leads")
    assert [r["rule"] for r in doc["rules"]] == ["skip-builtin", "partners", "engineering",
                                                 "company"]
    assert not any(r["matched"] for r in doc["rules"])
    assert all(r["reason"] for r in doc["rules"])
    assert "businessCategory" in doc["rules"][2]["reason"]
    assert doc["decision"] == {"action": "out_of_scope", "rule": None}
    text = run_syncd("explain", "demo", "eng-leads", config=demo)
    assert "out of scope" in text.stdout


def test_explain_a_group_whose_name_renders_empty(ws: Workspace) -> None:
    ws.write_config([{"name": "by-category", "group": {"name": "{attr[departmentNumber]}"}}],
                    {})
    group = next(iter(ws.directory.groups.values()))
    result = ws.syncd("explain", "corp", group.cn, "--format", "json")
    assert result.code == 0, result
    decision = json.loads(result.stdout)["decision"]
    assert (decision["action"], decision["rule"]) == ("skip", "by-category")
    assert "renders empty" in decision["reason"]


def test_explain_an_unknown_group(demo: Path, run_syncd: RunSyncd) -> None:
    result = run_syncd("explain", "demo", "no-such-group", config=demo)
    assert result.code == 2, result
    assert "no group 'no-such-group'" in result.stderr


# -- offline -------------------------------------------------------------------------------


def test_offline_sync_plans_from_the_mirror(ws: Workspace) -> None:
    ws.sync()
    ws.ldif_path.unlink()  # offline never reads the source
    before = ws.tables()
    doc = ws.sync("--offline")
    assert (doc["status"], doc["dry_run"]) == ("no_changes", True)
    assert doc["connectors"]["corp"]["mode"] == "offline"
    assert doc["connectors"]["corp"]["groups_seen"] == 7

    rules = json.loads(json.dumps(RULES))
    rules[3]["group"] = {"name": "co-{name}"}
    rules[2]["roles"] = {"owner": {"attribute": "owner"}}  # no facilitators any more
    rules_file = ws.root / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"rules": rules}), encoding="utf-8")
    preview = ws.sync("--offline", "--rules", rules_file)
    assert (preview["status"], preview["dry_run"]) == ("planned", True)
    assert sorted((c["group"], c["fields"]["name"]["new"])
                  for c in changes(preview, "update_group")) == [
        ("sales", "co-sales"), ("support", "co-support")]
    assert changes(preview, "change_role") == [{
        "op": "change_role", "group": "eng-platform", "user": "carol", "old": "facilitator",
        "new": "member", "rule": "engineering"}]
    assert nonzero(preview) == {"update_group": 2, "change_role": 1}
    assert ws.tables() == before


def test_offline_refuses_rules_reading_an_attribute_the_mirror_lacks(ws: Workspace) -> None:
    ws.sync()
    before = ws.tables()
    rules = [{"name": "by-department",
              "when": {"attribute": {"name": "departmentNumber", "present": True}}}]
    rules_file = ws.root / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = ws.syncd("sync", "--offline", "--rules", rules_file)
    assert result.code == 2, result
    assert "lacks the group attribute(s) departmentnumber" in result.stderr
    assert ws.tables() == before


def test_a_rule_change_reading_a_new_attribute_is_seen_by_explain(ws: Workspace) -> None:
    """The mirror holds only what the last sync's rules read: explain reads the source
    when the rules now read more, instead of seeing the attribute as absent."""
    ws.sync()
    ws.write_config([{"name": "described",
                      "when": {"attribute": {"name": "description", "present": True}}}], {})
    group = next(iter(ws.directory.groups.values()))
    group.description = "has one"
    ws.write()
    result = ws.syncd("explain", "corp", group.cn, "--format", "json")
    assert result.code == 0, result
    doc = json.loads(result.stdout)
    assert doc["from"] == "source"
    assert doc["decision"]["rule"] == "described"


def test_offline_before_any_sync_is_a_usage_error(ws: Workspace) -> None:
    result = ws.syncd("sync", "--offline")
    assert result.code == 2, result
    assert "run a sync first" in result.stderr


def test_rules_file_needs_offline(ws: Workspace) -> None:
    rules_file = ws.root / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(RULES), encoding="utf-8")
    result = ws.syncd("sync", "--rules", rules_file)
    assert result.code == 2, result
    assert "--rules goes with --offline" in result.stderr
