"""DNs in every RFC 4514 form through the installed ``syncd`` (issue 17, item 2): a group
whose DN ends in an escaped space is synced and found by ``explain``; member DNs with an
``=`` in a value or an OID as type are members; a member value that is not a DN is a
``dangling_member`` warning naming it, never a silent drop."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

pytestmark = pytest.mark.e2e

RunSyncd = Callable[..., Result]
BASE = "dc=example,dc=org"
GROUPS = f"ou=groups,{BASE}"
PEOPLE = f"ou=people,{BASE}"
ODD_GROUP = f"cn=#John Smith\\ ,{GROUPS}"


def record(dn: str, *lines: str) -> str:
    return "\n".join([f"dn: {dn}", *lines, f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_DNS, dn)}"]
                     ) + "\n\n"


def person(dn: str, uid: str) -> str:
    return record(dn, "objectClass: inetOrgPerson", f"uid: {uid}", "sn: X", f"cn: {uid}",
                  f"mail: {uid}@example.org")


LDIF = "".join([
    record(BASE, "objectClass: organization", "o: Example"),
    record(GROUPS, "objectClass: organizationalUnit", "ou: groups"),
    record(PEOPLE, "objectClass: organizationalUnit", "ou: people"),
    person(f"uid=ann,{PEOPLE}", "ann"),
    person(f"cn=A*x=b,{PEOPLE}", "starry"),
    person(f"uid=trail\\ ,{PEOPLE}", "trail"),
    # outside both bases, and never a member: it failed every run all the same
    record(f"cn=elsewhere\\ ,{BASE}", "objectClass: organizationalRole", "cn: elsewhere"),
    record(ODD_GROUP, "objectClass: groupOfNames", "cn: #John Smith",
           f"member: 0.9.2342.19200300.100.1.1=ann,{PEOPLE}",  # uid by its OID
           f"member: cn=a*X=B,{PEOPLE}",
           f"member: UID=trail\\20,{PEOPLE}",
           "member: cn=not<a dn"),
])


@pytest.fixture
def config(tmp_path: Path, write_config: Callable[..., Path]) -> Path:
    (tmp_path / "directory.ldif").write_text(LDIF, encoding="utf-8")
    return write_config({
        "version": 1,
        "store": {"url": f"sqlite:///{tmp_path / 'syncd.db'}"},
        "connectors": [{"name": "corp", "type": "ldif", "path": "directory.ldif",
                        "groups": {"base": GROUPS}, "users": {"base": PEOPLE}}],
        "rules": [{"name": "all", "group": {"name": "odd"}}],
    })


def run_json(run_syncd: RunSyncd, config: Path, *args: str) -> dict[str, Any]:
    result = run_syncd(*args, "--format", "json", config=config)
    assert result.code == 0, result
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_odd_dns_sync_and_an_invalid_member_is_a_warning(config: Path,
                                                         run_syncd: RunSyncd) -> None:
    doc = run_json(run_syncd, config, "sync")
    added = sorted(c["user"] for c in doc["changes"] if c["op"] == "add_member")
    assert added == ["ann", "starry", "trail"]
    assert [c["group"] for c in doc["changes"] if c["op"] == "create_group"] == ["odd"]
    (warning,) = [w for w in doc["warnings"] if w["code"] == "dangling_member"]
    assert warning["message"] == ("group 'odd': 1 member reference(s) resolve to nothing: "
                                  "invalid DN 'cn=not<a dn'")


@pytest.mark.parametrize("spelling", [
    ODD_GROUP, f"CN=\\#John Smith\\20,OU=Groups,{BASE.upper()}",
    f"2.5.4.3=#John Smith\\ , ou=groups, {BASE}"])
def test_explain_finds_a_group_whose_dn_ends_in_an_escaped_space(
        config: Path, run_syncd: RunSyncd, spelling: str) -> None:
    doc = run_json(run_syncd, config, "explain", "corp", spelling)
    assert doc["group"]["dn"] == ODD_GROUP
    assert doc["decision"]["action"] == "sync"
    assert doc["decision"]["members"] == 3
