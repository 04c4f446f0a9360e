"""The LDIF connector's own warnings (a filter that matched nothing, a DN given twice) reach
``syncd sync``'s JSON document and its table, through the installed command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

pytestmark = pytest.mark.e2e

RunSyncd = Callable[..., Result]
BASE = "dc=example,dc=org"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"

# People exported as posixAccounts only, so the rfc4519 users filter finds none of them;
# the staff group given twice, the second time with another description.
DIRECTORY = f"""\
version: 1

dn: {PEOPLE}
objectClass: organizationalUnit
ou: people

dn: uid=ann,{PEOPLE}
objectClass: account
objectClass: posixAccount
uid: ann
cn: Ann
uidNumber: 1001
gidNumber: 1001
homeDirectory: /home/ann
entryUUID: user-ann

dn: cn=staff,{GROUPS}
objectClass: groupOfNames
cn: staff
description: first
member: uid=ann,{PEOPLE}
entryUUID: group-staff

dn: cn=Staff,{GROUPS}
objectClass: groupOfNames
cn: staff
description: second
member: uid=ann,{PEOPLE}
entryUUID: group-staff
"""


def config(tmp_path: Path) -> Path:
    (tmp_path / "directory.ldif").write_text(DIRECTORY, encoding="utf-8")
    path = tmp_path / "syncd.yaml"
    path.write_text(json.dumps({
        "version": 1,
        "store": {"url": f"sqlite:///{tmp_path / 'syncd.db'}"},
        "connectors": [{"name": "corp", "type": "ldif", "path": "directory.ldif",
                        "schema": "rfc4519", "groups": {"base": GROUPS},
                        "users": {"base": PEOPLE}}],
        "rules": [{"name": "all", "when": {"dn": {"under": GROUPS}}}],
    }), encoding="utf-8")
    path.chmod(0o600)
    return path


def test_connector_warnings_are_in_the_json_document(tmp_path: Path,
                                                     run_syncd: RunSyncd) -> None:
    result = run_syncd("sync", "--format", "json", config=config(tmp_path))
    assert result.code == 0, result
    doc: dict[str, Any] = json.loads(result.stdout)
    ldif = tmp_path / "directory.ldif"
    assert doc["status"] == "applied"
    assert doc["warnings"][:2] == [
        {"code": "duplicate_entry",
         "message": f"ldif connector 'corp': {ldif}: the DN 'cn=Staff,{GROUPS}' is given at "
                    "lines 17 and 24; the entry at line 17 is used, the others are ignored"},
        {"code": "filter_matched_nothing",
         "message": "ldif connector 'corp': the users filter (the rfc4519 default) "
                    f"'(objectClass=inetOrgPerson)' matched none of the 2 entries under base "
                    f"'{PEOPLE}' in {ldif}; object classes there: account, "
                    "organizationalUnit, posixAccount"}]
    # the rules' and the diff's own warnings follow (ann is no user: a dangling member)
    assert [w["code"] for w in doc["warnings"][2:]] == ["dangling_member"]
    # the first record of the group is the group: one group, its description
    created = [c for c in doc["changes"] if c["op"] == "create_group"]
    assert [(c["group"], c["attributes"]["description"]) for c in created] == [
        ("staff", "first")]


def test_connector_warnings_are_in_the_table(tmp_path: Path, run_syncd: RunSyncd) -> None:
    result = run_syncd("sync", "--dry-run", config=config(tmp_path))
    assert result.code == 0, result
    shown = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert [line.split(":")[1].strip() for line in shown] == [
        "duplicate_entry", "filter_matched_nothing", "dangling_member"]
    assert "is given at lines 17 and 24" in shown[0]
    assert "'(objectClass=inetOrgPerson)' matched none of the 2 entries" in shown[1]
