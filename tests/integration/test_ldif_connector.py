"""The ldif connector on real files: scopes, presets, overrides, ids, refs and the demo."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from connectors import ldifparse
from connectors.dn import normalise_dn, normalise_dn_exact
from connectors.ldif import LdifConfig, LdifConnector
from syncd.errors import SourceError
from syncd.source import SourceGroup, SourceUser

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo" / "directory.ldif"

BASE = "dc=example,dc=org"


def make(tmp_path: Path, ldif: str, *, needed: frozenset[str] = frozenset(),
         **config: Any) -> LdifConnector:
    """A connector on ``ldif`` written to tmp_path/dir.ldif (given by a relative path)."""
    (tmp_path / "dir.ldif").write_text(ldif, encoding="utf-8")
    settings = LdifConfig.model_validate({"name": "t", "type": "ldif", "path": "dir.ldif",
                                          **config})
    return LdifConnector(settings, base_dir=tmp_path, needed_attributes=needed)


def groups(connector: LdifConnector) -> list[SourceGroup]:
    return list(connector.snapshot().groups)


def users(connector: LdifConnector) -> list[SourceUser]:
    return list(connector.snapshot().users)


def user(uid: str, parent: str = f"ou=people,{BASE}", extra: str = "") -> str:
    """An inetOrgPerson record (7 lines, more with ``extra``) and its blank line."""
    lines = [f"dn: uid={uid},{parent}", "objectClass: inetOrgPerson", f"uid: {uid}",
             f"cn: {uid.title()}", "sn: X", f"mail: {uid}@example.org",
             f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_DNS, uid)}"]
    return "\n".join([*lines, extra.strip()] if extra else lines) + "\n\n"


def group(cn: str, parent: str, members: list[str], extra: str = "") -> str:
    """A groupOfNames record (4 lines, more with members and ``extra``) and its blank line."""
    lines = [f"dn: cn={cn},{parent}", "objectClass: groupOfNames", f"cn: {cn}",
             f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_DNS, 'group-' + cn)}"]
    lines += [f"member: {m}" for m in members]
    return "\n".join([*lines, extra.strip()] if extra else lines) + "\n\n"


TREE = "\n".join([
    f"dn: {BASE}\nobjectClass: organization\no: Example\n",
    f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n",
    group("top", f"ou=groups,{BASE}", [f"uid=ann,ou=people,{BASE}"]),
    group("eng", f"ou=eng,ou=groups,{BASE}", [f"cn=deep,ou=x,ou=eng,ou=groups,{BASE}"]),
    group("deep", f"ou=x,ou=eng,ou=groups,{BASE}", [f"UID=Ann,OU=People,{BASE.upper()}"]),
    group("other", f"ou=other,{BASE}", []),
    user("ann"),
    user("ben", f"ou=partners,ou=people,{BASE}"),
])


# -- scope and filters ------------------------------------------------------------------

@pytest.mark.parametrize(("scope", "base", "expected"), [
    ("subtree", f"ou=groups,{BASE}", ["top", "eng", "deep"]),
    ("subtree", "OU=Groups, DC=Example, DC=Org", ["top", "eng", "deep"]),
    ("subtree", "", ["top", "eng", "deep", "other"]),
    ("one", f"ou=groups,{BASE}", ["top"]),
    ("one", f"ou=eng,ou=groups,{BASE}", ["eng"]),
    ("base", f"cn=eng,ou=eng,ou=groups,{BASE}", ["eng"]),
    ("base", f"ou=eng,ou=groups,{BASE}", []),
])
def test_group_scope(tmp_path: Path, scope: str, base: str, expected: list[str]) -> None:
    conn = make(tmp_path, TREE, groups={"base": base, "scope": scope})
    assert [g.name for g in groups(conn)] == expected


def test_user_scope_one_level(tmp_path: Path) -> None:
    conn = make(tmp_path, TREE, users={"base": f"ou=people,{BASE}", "scope": "one"})
    assert [u.user_name for u in users(conn)] == ["ann"]
    conn = make(tmp_path, TREE, users={"base": f"ou=people,{BASE}"})
    assert [u.user_name for u in users(conn)] == ["ann", "ben"]


def test_custom_filter_replaces_the_preset_default(tmp_path: Path) -> None:
    conn = make(tmp_path, TREE, groups={"filter": "(&(objectClass=groupOfNames)(cn=*e*))"},
                users={"filter": "(mail=BEN@*)"})
    assert [g.name for g in groups(conn)] == ["eng", "deep", "other"]
    assert [u.user_name for u in users(conn)] == ["ben"]


def test_null_filter_uses_the_preset_default(tmp_path: Path) -> None:
    ldif = (group("names", BASE, [])
            + f"\ndn: cn=unique,{BASE}\nobjectClass: groupOfUniqueNames\ncn: unique\n"
            + f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_DNS, 'unique')}\n\n"
            + f"dn: cn=posix,{BASE}\nobjectClass: posixGroup\ncn: posix\n"
            + f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_DNS, 'posix')}\n\n"
            + f"dn: uid=p,{BASE}\nobjectClass: posixAccount\nuid: p\n\n" + user("ann"))
    conn = make(tmp_path, ldif)
    assert [g.name for g in groups(conn)] == ["names", "unique"]
    assert [u.user_name for u in users(conn)] == ["ann"]
    conn = make(tmp_path, ldif, schema="rfc2307")
    assert [g.name for g in groups(conn)] == ["posix"]
    assert [u.user_name for u in users(conn)] == ["p"]


# -- presets ----------------------------------------------------------------------------

def test_rfc4519_group_and_user_mapping(tmp_path: Path) -> None:
    conn = make(tmp_path, TREE, groups={"base": f"ou=groups,{BASE}"})
    deep = next(g for g in groups(conn) if g.name == "deep")
    assert deep.external_id == str(uuid.uuid5(uuid.NAMESPACE_DNS, "group-deep"))
    assert deep.dn == f"cn=deep,ou=x,ou=eng,ou=groups,{BASE}"
    assert deep.ref == f"cn=deep,ou=x,ou=eng,ou=groups,{BASE}"
    # a member DN spelt in another case is the same ref as the user's own
    ann = next(u for u in users(conn) if u.user_name == "ann")
    assert deep.members == [ann.ref]
    assert ann == SourceUser(external_id=str(uuid.uuid5(uuid.NAMESPACE_DNS, "ann")),
                             ref=f"uid=ann,ou=people,{BASE}", user_name="ann",
                             email="ann@example.org", display_name="Ann")


def test_rfc4519_group_of_unique_names(tmp_path: Path) -> None:
    ldif = (f"dn: cn=Mixed,{BASE}\nobjectClass: groupOfUniqueNames\ncn: Mixed\n"
            "description: both kinds\n"
            f"uniqueMember: uid=a,{BASE}#'0101'B\n"
            f"uniqueMember: uid=b,{BASE}\n"
            f"uniqueMember: cn=x\\#'01'B,{BASE}\n"
            f"\ndn: cn=Both,{BASE}\nobjectClass: groupOfNames\nobjectClass: groupOfUniqueNames\n"
            f"cn: Both\nmember: uid=a,{BASE}\nuniqueMember: UID=A,{BASE}#'1'B\n"
            f"uniqueMember: uid=c,{BASE}\n")
    mixed, both = groups(make(tmp_path, ldif))
    assert mixed.name == "Mixed"
    assert mixed.description == "both kinds"
    # an escaped "#" belongs to the DN: no suffix to strip there
    assert mixed.members == [f"uid=a,{BASE}", f"uid=b,{BASE}", f"cn=x#'01'b,{BASE}"]
    assert both.members == [f"uid=a,{BASE}", f"uid=c,{BASE}"]  # de-duplicated


def test_rfc2307_member_uid_gives_name_refs(tmp_path: Path) -> None:
    ldif = (f"dn: cn=devs,ou=groups,{BASE}\nobjectClass: posixGroup\ncn: devs\ngidNumber: 500\n"
            "memberUid: ann\nmemberUid: bob\nmemberUid:  \n"
            f"entryUUID: 5B0C9B2E-0E3A-4F4B-9E3B-2C7D1A0F4E11\n\n"
            f"dn: uid=ann,ou=people,{BASE}\nobjectClass: posixAccount\nobjectClass: account\n"
            "uid: ann\ncn: Ann Lee\nuidNumber: 1000\n")
    conn = make(tmp_path, ldif, schema="rfc2307")
    (devs,) = groups(conn)
    assert devs.members == ["name:ann", "name:bob"]
    assert devs.external_id == "5b0c9b2e-0e3a-4f4b-9e3b-2c7d1a0f4e11"  # canonical lower case
    (ann,) = users(conn)
    assert (ann.user_name, ann.display_name, ann.email) == ("ann", "Ann Lee", None)


AD_GUID = uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")


def ad_user(sam: str, uac: int, *, computer: bool = False) -> str:
    classes = "objectClass: top\nobjectClass: person\nobjectClass: user\n"
    if computer:
        classes += "objectClass: computer\n"
    guid = base64.b64encode(uuid.uuid5(uuid.NAMESPACE_DNS, sam).bytes_le).decode()
    return (f"dn: CN={sam.title()},OU=Staff,DC=corp,DC=example\n{classes}"
            f"sAMAccountName: {sam}\ndisplayName: {sam.title()} Person\n"
            f"userAccountControl: {uac}\nobjectGUID:: {guid}\n\n")


def test_ad_preset(tmp_path: Path) -> None:
    guid = base64.b64encode(AD_GUID.bytes_le).decode()
    ldif = (f"dn: CN=Staff,OU=Groups,DC=corp,DC=example\nobjectClass: top\nobjectClass: group\n"
            f"cn: Staff\nobjectGUID:: {guid}\n"
            "member: CN=Ann,OU=Staff,DC=corp,DC=example\n"
            "member: CN=Bob,OU=Staff,DC=corp,DC=example\n\n"
            + ad_user("ann", 512) + ad_user("bob", 514) + ad_user("ws01$", 4096, computer=True)
            + ad_user("carl", 66050))
    conn = make(tmp_path, ldif, schema="ad")
    (staff,) = groups(conn)
    # the GUID string as Windows shows it: the first three fields are little-endian
    assert staff.external_id == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    assert staff.members == ["cn=ann,ou=staff,dc=corp,dc=example",
                             "cn=bob,ou=staff,dc=corp,dc=example"]
    found = users(conn)
    assert [u.user_name for u in found] == ["ann", "bob", "carl"]  # no computer accounts
    assert [u.disabled for u in found] == [False, True, True]
    assert found[0].display_name == "Ann Person"
    assert found[0].external_id == str(uuid.uuid5(uuid.NAMESPACE_DNS, "ann"))
    assert found[0].ref == staff.members[0]


def test_ad_user_disabled_condition_replaces_the_account_control_bit(tmp_path: Path) -> None:
    ldif = ad_user("ann", 514).replace("userAccountControl", "extensionAttribute1: active\n"
                                       "userAccountControl")
    conn = make(tmp_path, ldif, schema="ad",
                attributes={"user_disabled": {"name": "extensionAttribute1", "equals": "gone"}})
    assert [u.disabled for u in users(conn)] == [False]


# -- attribute overrides and conditions -------------------------------------------------

def test_attribute_overrides(tmp_path: Path) -> None:
    ldif = (f"dn: cn=g,{BASE}\nobjectClass: groupOfNames\ncn: g\ndisplayName: Nice Name\n"
            f"info: text\nipaUniqueID: g-1\nmember: uid=a,{BASE}\n"
            f"seeAlso: uid=b,{BASE}\n\n"
            f"dn: uid=a,{BASE}\nobjectClass: inetOrgPerson\nuid: a\nmail: a@x.example\n"
            "employeeNumber: 0042\nmailAlternateAddress: a.alt@x.example\n"
            "givenName: Alpha\nipaUniqueID: u-1\n")
    conn = make(tmp_path, ldif, attributes={
        "id": "ipaUniqueID", "group_name": "displayName", "description": "info",
        "member": "seeAlso", "user_name": "employeeNumber", "email": "mailAlternateAddress",
        "display_name": "givenName"})
    (g,) = groups(conn)
    assert (g.external_id, g.name, g.description) == ("g-1", "Nice Name", "text")
    assert g.members == [f"uid=b,{BASE}"]  # only the overriding attribute
    (u,) = users(conn)
    assert (u.external_id, u.user_name, u.email, u.display_name) == (
        "u-1", "0042", "a.alt@x.example", "Alpha")


@pytest.mark.parametrize(("condition", "expected"), [
    ({"name": "nsAccountLock", "equals": "TRUE"}, ["b"]),
    ({"name": "NSACCOUNTLOCK", "equals": "TRUE"}, ["b"]),        # names are case-insensitive
    ({"name": "nsAccountLock", "equals": "true"}, []),           # values compare exactly
    ({"name": "nsAccountLock", "present": True}, ["b", "c"]),
    ({"name": "nsAccountLock", "present": False}, ["a"]),
    ({"name": "nsAccountLock", "in": ["FALSE", "false"]}, ["c"]),
    ({"name": "employeeType", "glob": "ex-*"}, ["c"]),
    ({"name": "employeeType", "regex": "^(ex-|re)"}, ["b", "c"]),
])
def test_user_disabled_condition(tmp_path: Path, condition: dict[str, Any],
                                 expected: list[str]) -> None:
    ldif = (user("a", BASE, "employeeType: staff")
            + user("b", BASE, "nsAccountLock: TRUE\nemployeeType: retired")
            + user("c", BASE, "nsAccountLock: false\nemployeeType: ex-staff"))
    conn = make(tmp_path, ldif, attributes={"user_disabled": condition})
    assert [u.user_name for u in users(conn) if u.disabled] == expected


def test_user_external_condition(tmp_path: Path) -> None:
    ldif = user("a", BASE, "employeeType: staff") + user("b", BASE, "employeeType: external")
    conn = make(tmp_path, ldif,
                attributes={"user_external": {"name": "employeeType", "equals": "external"}})
    assert [(u.user_name, u.external, u.disabled) for u in users(conn)] == [
        ("a", False, False), ("b", True, False)]


# -- ids, refs, attributes --------------------------------------------------------------

def test_fallback_id_from_the_normalised_dn(tmp_path: Path) -> None:
    ldif = (f"dn: cn=NoId, OU=Groups,{BASE}\nobjectClass: groupOfNames\ncn: NoId\n\n"
            f"dn: uid=x,{BASE}\nobjectClass: inetOrgPerson\nuid: x\n")
    with capture_logs() as logs:
        conn = make(tmp_path, ldif)
        (g,) = groups(conn)
        (u,) = users(conn)
    assert g.external_id == str(uuid.uuid5(uuid.NAMESPACE_X500, f"cn=noid,ou=groups,{BASE}"))
    assert u.external_id == str(uuid.uuid5(uuid.NAMESPACE_X500, f"uid=x,{BASE}"))
    # stable: the same entry spelt differently keeps its id
    respelt = make(tmp_path, f"dn: CN=noid,ou=groups,{BASE.upper()}\nobjectClass: groupOfNames\n"
                   "cn: noid\n")
    assert groups(respelt)[0].external_id == g.external_id
    fallbacks = [e for e in logs if e["event"] == "ldif.ids_from_dn"]
    assert [(e["kind"], e["count"]) for e in fallbacks] == [("group", 1), ("user", 1)]


def line_of(text: str, dn: str) -> int:
    """The line on which the record of ``dn`` starts."""
    return text.splitlines().index(f"dn: {dn}") + 1


def without_id(text: str, dn: str) -> str:
    """``text`` with the entryUUID line of the record of ``dn`` taken out."""
    head, record_start, rest = text.partition(f"dn: {dn}\n")
    record, blank, tail = rest.partition("\n\n")
    kept = [line for line in record.splitlines() if not line.startswith("entryUUID:")]
    assert len(kept) == len(record.splitlines()) - 1
    return head + record_start + "\n".join(kept) + blank + tail


@pytest.mark.parametrize(("kind", "dn"), [
    ("group", f"cn=eng,ou=eng,ou=groups,{BASE}"),
    ("user", f"uid=ben,ou=partners,ou=people,{BASE}"),
])
def test_an_entry_without_its_id_among_entries_with_one_fails(tmp_path: Path, kind: str,
                                                              dn: str) -> None:
    ldif = without_id(TREE, dn)
    snap = make(tmp_path, ldif).snapshot()
    failing, other = (snap.groups, snap.users) if kind == "group" else (snap.users, snap.groups)
    with pytest.raises(SourceError) as info:
        list(failing)
    message = str(info.value)
    assert message.startswith(f"ldif connector 't': {kind} {dn} "
                              f"({tmp_path / 'dir.ldif'}:{line_of(ldif, dn)}) has no entryUUID")
    assert f"while {'3 other groups have' if kind == 'group' else '1 other user has'} one" \
        in message
    assert "\n" not in message
    # the other kind, every entry with its id, reads as before
    assert len(list(other)) == (2 if kind == "group" else 4)


def test_an_export_cut_short_inside_a_record_fails(tmp_path: Path) -> None:
    # the last record (ben) loses its tail, entryUUID with it, in the middle of a line
    cut = TREE[:TREE.rindex("@example.org\nentryUUID")]
    assert cut.endswith("mail: ben")
    conn = make(tmp_path, cut)
    assert len(groups(conn)) == 4
    dn = f"uid=ben,ou=partners,ou=people,{BASE}"
    with pytest.raises(SourceError, match=rf"^ldif connector 't': user {dn} "
                       rf"\({tmp_path / 'dir.ldif'}:{line_of(cut, dn)}\) has no entryUUID"):
        users(conn)


def test_many_entries_without_ids_are_counted_in_the_one_line(tmp_path: Path) -> None:
    ldif = without_id(without_id(TREE, f"cn=top,ou=groups,{BASE}"),
                      f"cn=other,ou=other,{BASE}")
    with pytest.raises(SourceError) as info:
        groups(make(tmp_path, ldif))
    top = f"cn=top,ou=groups,{BASE}"
    assert f"group {top} ({tmp_path / 'dir.ldif'}:{line_of(ldif, top)}) and 1 more have no " \
        "entryUUID while 2 other groups have one" in str(info.value)


def test_groups_and_users_are_judged_apart(tmp_path: Path) -> None:
    """Every group without an id, every user with one: each kind is whole, nothing fails."""
    ldif = TREE
    for dn in (f"cn=top,ou=groups,{BASE}", f"cn=eng,ou=eng,ou=groups,{BASE}",
               f"cn=deep,ou=x,ou=eng,ou=groups,{BASE}", f"cn=other,ou=other,{BASE}"):
        ldif = without_id(ldif, dn)
    with capture_logs() as logs:
        conn = make(tmp_path, ldif)
        found = groups(conn)
        people = users(conn)
    assert [g.external_id for g in found] == [
        str(uuid.uuid5(uuid.NAMESPACE_X500, normalise_dn(g.dn))) for g in found]
    assert [u.external_id for u in people] == [str(uuid.uuid5(uuid.NAMESPACE_DNS, name))
                                               for name in ("ann", "ben")]
    assert [(e["event"], e["kind"], e["count"]) for e in logs] == [
        ("ldif.ids_from_dn", "group", 4)]


def test_only_needed_attributes_are_kept(tmp_path: Path) -> None:
    photo = base64.b64encode(b"\xff\xd8\xff\xe0binary").decode()
    zoe = base64.b64encode("Zoë".encode()).decode()
    ldif = group("g", BASE, [f"uid=a,{BASE}"],
                 f"owner: uid=a,{BASE}\nOwner: uid=b,{BASE}\nbusinessCategory: sync\n"
                 f"description: d\njpegPhoto:: {photo}\nseeAlso:: {zoe}\n")
    conn = make(tmp_path, ldif, needed=frozenset({"owner", "jpegphoto", "seealso", "l"}))
    (g,) = groups(conn)
    assert g.attributes == {"owner": [f"uid=a,{BASE}", f"uid=b,{BASE}"],
                            "jpegphoto": [photo], "seealso": ["Zoë"]}
    assert g.description == "d"
    assert groups(make(tmp_path, ldif))[0].attributes == {}


def test_dangling_and_invalid_members(tmp_path: Path) -> None:
    ldif = group("g", BASE, [f"uid=ghost,ou=people,{BASE}", "not a dn", f"uid=a,{BASE}",
                             "cn=a<b,dc=org"]) + user("a", BASE)
    with capture_logs() as logs:
        (g,) = groups(make(tmp_path, ldif))
    # a dangling DN is still a ref (the engine reports it); so is a value that is not a DN,
    # as a ref that resolves to nothing
    assert g.members == [f"uid=ghost,ou=people,{BASE}", "invalid DN 'not a dn'",
                         f"uid=a,{BASE}", "invalid DN 'cn=a<b,dc=org'"]
    invalid = [e for e in logs if e["event"] == "ldif.invalid_member"]
    assert [e["value"] for e in invalid] == ["not a dn", "cn=a<b,dc=org"]
    assert invalid[0]["location"] == f"{tmp_path / 'dir.ldif'}:1"
    assert invalid[0]["log_level"] == "warning"


def test_user_without_name_is_skipped_with_a_warning(tmp_path: Path) -> None:
    ldif = (user("a", BASE) + f"dn: cn=Nameless,{BASE}\nobjectClass: inetOrgPerson\n"
            "cn: Nameless\nmail: n@example.org\n\n" + user("b", BASE))
    with capture_logs() as logs:
        found = users(make(tmp_path, ldif))
    assert [u.user_name for u in found] == ["a", "b"]
    (warning,) = [e for e in logs if e["event"] == "ldif.user_without_name"]
    assert warning["dn"] == f"cn=Nameless,{BASE}"
    assert warning["location"] == f"{tmp_path / 'dir.ldif'}:9"


def test_group_without_name_falls_back_on_the_rdn(tmp_path: Path) -> None:
    conn = make(tmp_path, group("ops", BASE, []), attributes={"group_name": "displayName"})
    with capture_logs() as logs:
        assert [g.name for g in groups(conn)] == ["ops"]
    assert [e["event"] for e in logs] == ["ldif.group_without_name"]


def test_normalise_ref(tmp_path: Path) -> None:
    conn = make(tmp_path, "")
    assert conn.normalise_ref(f"CN=Eng-Leads, OU=Groups,{BASE}") == f"cn=eng-leads,ou=groups,{BASE}"
    assert conn.normalise_ref("eng leads") == "eng leads"


@pytest.mark.parametrize("dn", [
    f"uid=ann,ou=people,{BASE}", f"UID=Ann,OU=People,{BASE.upper()}",
    f"cn=John Smith,ou=people,{BASE}", f"cn=John  Smith,{BASE}", f"cn= padded ,{BASE}",
    f"cn=Smith\\, John,{BASE}", f"cn=a+uid=b,{BASE}", "cn=Zoë,dc=org", f"cn=#41,{BASE}",
    f"cn=x\\#'01'B,{BASE}", "2.5.4.3=oid,dc=org", f"cn=a.b@c-d_e,{BASE}", f"cn=a ,{BASE}",
    f"cn=a;b,{BASE}", f"cn=\\20lead,{BASE}", f"cn=trail\\ ,{BASE}", f"cn=a=b,{BASE}",
])
def test_fast_normalise_matches_normalise_dn(dn: str) -> None:
    def outcome(normalise: Callable[[str], str]) -> str:
        try:
            return normalise(dn)
        except ValueError:
            return "ValueError"

    assert outcome(normalise_dn) == outcome(normalise_dn_exact)


# -- the file ---------------------------------------------------------------------------

def test_malformed_file_fails_with_file_and_line(tmp_path: Path) -> None:
    conn = make(tmp_path, group("g", BASE, []) + "dn: cn=broken\nchangetype: delete\n")
    stream = iter(conn.snapshot().groups)
    assert next(stream).name == "g"   # records stream before the bad one is reached
    with pytest.raises(SourceError, match=rf"^{tmp_path / 'dir.ldif'}:7: change records"):
        next(stream)


def test_invalid_dn_fails_with_file_and_line(tmp_path: Path) -> None:
    conn = make(tmp_path, user("a", BASE) + "dn: not a dn\nobjectClass: inetOrgPerson\n")
    with pytest.raises(SourceError, match=r"dir\.ldif:9: invalid DN"):
        users(conn)


def test_missing_file(tmp_path: Path) -> None:
    conn = make(tmp_path, "")
    (tmp_path / "dir.ldif").unlink()
    with pytest.raises(SourceError, match=str(tmp_path / "dir.ldif")):
        conn.snapshot()


def test_a_record_over_the_size_limit_fails_with_file_and_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    many = group("many", f"ou=groups,{BASE}", [f"uid=u{i},ou=people,{BASE}" for i in range(10)])
    ldif = TREE + many
    monkeypatch.setattr(ldifparse, "MAX_RECORD_BYTES", 300)
    assert all(len(record) < 300 for record in TREE.split("\n\n"))
    assert len(many) > 300
    conn = make(tmp_path, ldif)
    with pytest.raises(SourceError, match=rf"^{tmp_path / 'dir.ldif'}:"
                       rf"{line_of(ldif, f'cn=many,ou=groups,{BASE}')}: record larger than "
                       "300 bytes"):
        groups(conn)


# Runs the connector on /dev/zero in a process of its own, its address space capped so that
# reading without a bound fails fast (MemoryError) instead of taking the machine's memory.
DEV_ZERO = """
import resource, sys, time
from pathlib import Path
cap = 1024 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from connectors.ldif import LdifConfig, LdifConnector
from syncd.errors import SourceError
conn = LdifConnector(LdifConfig.model_validate(
    {"name": "zero", "type": "ldif", "path": "/dev/zero"}), base_dir=Path("/"))
started = time.monotonic()
try:
    list(conn.snapshot().groups)
    sys.exit("read /dev/zero to its end")
except SourceError as exc:
    print(exc)
print(round(time.monotonic() - started, 2))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_an_endless_file_fails_quickly_with_bounded_memory() -> None:
    proc = subprocess.run([sys.executable, "-c", DEV_ZERO], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    message, seconds, peak_mib = proc.stdout.splitlines()
    assert message.startswith("/dev/zero:1: line longer than 64 MiB")
    assert float(seconds) < 5
    # the one line read up to the limit, in a copy or two, and Python itself
    assert int(peak_mib) < 400


def test_relative_and_absolute_paths(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "d.ldif").write_text(user("a", BASE))
    rel = LdifConnector(LdifConfig.model_validate(
        {"name": "t", "type": "ldif", "path": "d.ldif"}), base_dir=sub)
    absolute = LdifConnector(LdifConfig.model_validate(
        {"name": "t", "type": "ldif", "path": str(sub / "d.ldif")}), base_dir=tmp_path)
    assert rel.path == sub / "d.ldif"
    assert [u.user_name for u in users(rel)] == [u.user_name for u in users(absolute)] == ["a"]


def test_streams_in_either_order_and_again(tmp_path: Path) -> None:
    snap = make(tmp_path, TREE).snapshot()
    first_users = list(snap.users)
    first_groups = list(snap.groups)
    assert list(snap.groups) == first_groups
    assert list(snap.users) == first_users
    assert len(first_users) == 2
    assert len(first_groups) == 4


def test_file_changed_between_passes_fails(tmp_path: Path) -> None:
    conn = make(tmp_path, TREE)
    snap = conn.snapshot()
    assert len(list(snap.groups)) == 4
    path = tmp_path / "dir.ldif"
    path.write_text(TREE + user("late", BASE))
    os.utime(path, ns=(1, 1))   # a different mtime even on a coarse clock
    with pytest.raises(SourceError, match="changed"):
        list(snap.users)


def test_test_connection_counts(tmp_path: Path) -> None:
    info = make(tmp_path, TREE).test_connection()
    assert (info["groups"], info["users"]) == (4, 2)
    assert info["elapsed_seconds"] >= 0
    assert info["path"] == str(tmp_path / "dir.ldif")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("groups", {"base": "not a dn"}, "base"),
    ("users", {"filter": "(cn:dn:=x)"}, "filter"),
    ("users", {"filter": "(cn=a"}, "filter"),
])
def test_config_rejects_bad_searches(key: str, value: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LdifConfig.model_validate({"name": "t", "type": "ldif", "path": "x", key: value})


# -- the demo directory -----------------------------------------------------------------

@pytest.fixture
def demo() -> LdifConnector:
    settings = LdifConfig.model_validate({
        "name": "demo", "type": "ldif", "path": "demo/directory.ldif", "schema": "rfc4519",
        "attributes": {"user_disabled": {"name": "nsAccountLock", "equals": "TRUE"},
                       "user_external": {"name": "employeeType", "equals": "external"}}})
    return LdifConnector(settings, base_dir=REPO / "config",
                         needed_attributes=frozenset({"owner", "businesscategory"}))


def test_demo_directory_counts_and_people(demo: LdifConnector) -> None:
    with capture_logs() as logs:
        snap = demo.snapshot()
        people = list(snap.users)
        teams = list(snap.groups)
    assert logs == []   # every entry is well formed: no warnings
    assert len(people) == 40
    assert len(teams) == 13
    assert sorted(u.user_name for u in people if u.disabled) == ["erik", "marek"]
    assert sorted(u.user_name for u in people if u.external) == [
        "david.osei", "katrin.brandt", "mariana.silva", "pieter.jansen"]
    names = {u.user_name: u for u in people}
    assert names["zoe"].display_name == "Zoë Martin"
    assert names["joerg"].display_name == "Jörg Müller"
    assert names["alice"].email == "alice@example.org"
    assert len({u.external_id for u in people} | {g.external_id for g in teams}) == 53


def test_demo_directory_groups(demo: LdifConnector) -> None:
    snap = demo.snapshot()
    people = {u.ref: u.user_name for u in snap.users}
    teams = {g.name: g for g in snap.groups}
    refs = {g.ref: name for name, g in teams.items()}
    assert {"engineering", "platform", "frontend", "eng-leads", "sales", "partner-portal",
            "Domain Admins"} <= set(teams)
    assert teams["Domain Admins"].dn == "cn=Domain Admins,ou=builtin,ou=groups,dc=example,dc=org"
    # nesting: engineering holds platform and frontend
    assert {refs.get(m) for m in teams["engineering"].members} >= {"platform", "frontend"}
    # the deliberate cycle
    assert teams["api-reviewers"].ref in teams["architecture-board"].members
    assert teams["architecture-board"].ref in teams["api-reviewers"].members
    # exactly one member reference resolves to nothing
    dangling = [m for g in teams.values() for m in g.members if m not in people and m not in refs]
    assert dangling == ["uid=jdoe,ou=people,dc=example,dc=org"]
    assert [people[m] for m in teams["eng-leads"].members] == ["alice", "carol", "zoe"]
    assert teams["engineering"].attributes["businesscategory"] == ["sync"]
    assert teams["platform"].attributes["owner"] == ["uid=carol,ou=people,dc=example,dc=org"]
    assert all(people[m] for m in teams["partner-portal"].members)
    assert "Nordwind Consulting" in teams["partner-portal"].description   # a folded line


# -- object classes, filters that match nothing, duplicate entries (issue 17) -----------------

def read_all(connector: LdifConnector) -> tuple[list[SourceUser], list[SourceGroup],
                                               list[tuple[str, str]]]:
    """Both streams of one snapshot read to the end, and its warnings as (code, message)."""
    snap = connector.snapshot()
    found_users, found_groups = list(snap.users), list(snap.groups)
    return found_users, found_groups, [(w.code, w.message) for w in snap.warnings]


def person(uid: str, *object_classes: str, parent: str = f"ou=people,{BASE}") -> str:
    """A user record naming only ``object_classes``."""
    lines = [f"dn: uid={uid},{parent}", *(f"objectClass: {c}" for c in object_classes),
             f"uid: {uid}", f"cn: {uid.title()}", "sn: X", f"mail: {uid}@example.org",
             f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_DNS, uid)}"]
    return "\n".join(lines) + "\n\n"


PEOPLE_OU = f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n"


@pytest.mark.parametrize(("schema", "users_filter", "object_classes"), [
    ("rfc4519", None, ["OpenLDAPperson"]),                        # a subclass of the default
    ("rfc4519", "(objectClass=person)", ["inetOrgPerson"]),
    ("rfc4519", "(objectClass=organizationalPerson)", ["inetOrgPerson"]),
    ("rfc4519", "(objectClass=2.5.6.6)", ["inetOrgPerson"]),
    ("rfc2307", "(objectClass=person)", ["inetOrgPerson", "posixAccount"]),
    ("ad", "(&(objectClass=organizationalPerson)(!(objectClass=computer)))", ["user"]),
])
def test_a_user_naming_only_a_subclass_of_the_filter_class_is_a_user(
        tmp_path: Path, schema: str, users_filter: str | None,
        object_classes: list[str]) -> None:
    uid_attr = "sAMAccountName" if schema == "ad" else "uid"
    ldif = PEOPLE_OU + person("ann", *object_classes).replace("uid: ann", f"{uid_attr}: ann")
    ldif += group("staff", f"ou=groups,{BASE}", [f"uid=ann,ou=people,{BASE}"])
    users_search = {"base": f"ou=people,{BASE}"}
    if users_filter is not None:
        users_search["filter"] = users_filter
    found_users, _, warnings = read_all(make(
        tmp_path, ldif, schema=schema, users=users_search,
        groups={"base": f"ou=groups,{BASE}", "filter": "(objectClass=groupOfNames)"},
        attributes={"id": "entryUUID"}))
    assert [u.user_name for u in found_users] == ["ann"]
    assert warnings == []


def test_ad_computers_are_not_users(tmp_path: Path) -> None:
    ldif = PEOPLE_OU + person("ann", "user") + person("pc1", "computer")
    ldif = ldif.replace("uid: ", "sAMAccountName: ")
    found_users, _, _ = read_all(make(tmp_path, ldif, schema="ad",
                                      users={"base": f"ou=people,{BASE}"},
                                      attributes={"id": "entryUUID"}))
    assert [u.user_name for u in found_users] == ["ann"]


def test_a_users_filter_that_matches_nothing_warns_with_the_classes_seen(
        tmp_path: Path) -> None:
    ldif = (PEOPLE_OU + person("ann", "account", "posixAccount")
            + person("ben", "top", "Account", "posixAccount", "shadowAccount")
            + group("staff", f"ou=groups,{BASE}", [f"uid=ann,ou=people,{BASE}"]))
    found_users, found_groups, warnings = read_all(make(
        tmp_path, ldif, users={"base": f"ou=People,{BASE}"}))
    assert found_users == []
    assert [g.name for g in found_groups] == ["staff"]
    assert warnings == [(
        "filter_matched_nothing",
        "ldif connector 't': the users filter (the rfc4519 default) "
        "'(objectClass=inetOrgPerson)' matched none of the 3 entries under base "
        f"'ou=People,{BASE}' in {tmp_path / 'dir.ldif'}; object classes there: account, "
        "organizationalUnit, posixAccount, shadowAccount, top")]


def test_a_groups_filter_that_matches_nothing_names_its_own_filter(tmp_path: Path) -> None:
    ldif = (f"dn: cn=staff,ou=groups,{BASE}\nobjectClass: posixGroup\ncn: staff\n"
            "gidNumber: 10\n\n" + user("ann"))
    _, found_groups, warnings = read_all(make(
        tmp_path, ldif, groups={"base": f"ou=groups,{BASE}", "scope": "one",
                                "filter": "(objectClass=groupOfNames)"}))
    assert found_groups == []
    assert warnings == [(
        "filter_matched_nothing",
        "ldif connector 't': the groups filter '(objectClass=groupOfNames)' did not match "
        f"the one entry under base 'ou=groups,{BASE}' (scope one) in {tmp_path / 'dir.ldif'}; "
        "object classes there: posixGroup")]


def test_entries_without_object_classes_are_said_to_have_none(tmp_path: Path) -> None:
    ldif = f"dn: cn=a,ou=groups,{BASE}\ncn: a\n\ndn: cn=b,ou=groups,{BASE}\ncn: b\n\n"
    _, _, warnings = read_all(make(tmp_path, ldif, groups={"base": f"ou=groups,{BASE}"}))
    (message,) = [m for _, m in warnings if "groups filter" in m]
    assert message.endswith(f"matched none of the 2 entries under base 'ou=groups,{BASE}' in "
                            f"{tmp_path / 'dir.ldif'}; no objectClass there")


def test_many_classes_seen_are_cut_short(tmp_path: Path) -> None:
    ldif = PEOPLE_OU + "".join(person(f"u{i}", f"class{i:02}") for i in range(15))
    _, _, warnings = read_all(make(tmp_path, ldif, users={"base": f"ou=people,{BASE}"}))
    (message,) = [m for _, m in warnings if "users filter" in m]
    assert message.endswith("object classes there: class00, class01, class02, class03, "
                            "class04, class05, class06, class07, class08, class09 and 6 more")


@pytest.mark.parametrize("config", [
    {},                                                         # both filters match
    {"users": {"base": f"ou=nobody,{BASE}"}},                   # nothing under the base
    {"groups": {"base": f"cn=top,ou=groups,{BASE}", "scope": "one"}},
])
def test_no_filter_warning_when_something_matched_or_nothing_was_there(
        tmp_path: Path, config: dict[str, Any]) -> None:
    _, _, warnings = read_all(make(tmp_path, TREE, **config))
    assert warnings == []


def test_a_duplicate_dn_warns_with_both_lines_and_the_first_entry_wins(tmp_path: Path) -> None:
    again_ann = user("ann").replace(f"dn: uid=ann,ou=people,{BASE}",
                                    f"dn: UID=Ann, OU=People,{BASE}").replace(
                                        "mail: ann@", "mail: other@")
    again_top = group("top", f"ou=groups,{BASE}", [], extra="description: again")
    ldif = TREE + again_ann + again_top
    found_users, found_groups, warnings = read_all(make(tmp_path, ldif))
    path = tmp_path / "dir.ldif"
    ann_lines = (line_of(ldif, f"uid=ann,ou=people,{BASE}"),
                 line_of(ldif, f"UID=Ann, OU=People,{BASE}"))
    top_first = line_of(ldif, f"cn=top,ou=groups,{BASE}")
    top_again = ldif.splitlines().index(f"dn: cn=top,ou=groups,{BASE}", top_first) + 1
    assert warnings == [
        ("duplicate_entry",
         f"ldif connector 't': {path}: the DN 'UID=Ann, OU=People,{BASE}' is given at lines "
         f"{ann_lines[0]} and {ann_lines[1]}; the entry at line {ann_lines[0]} is used, the "
         "others are ignored"),
        ("duplicate_entry",
         f"ldif connector 't': {path}: the DN 'cn=top,ou=groups,{BASE}' is given at lines "
         f"{top_first} and {top_again}; the entry at line {top_first} is used, the others "
         "are ignored"),
    ]
    assert [(u.user_name, u.email) for u in found_users] == [
        ("ann", "ann@example.org"), ("ben", "ben@example.org")]
    assert sorted(g.name for g in found_groups) == ["deep", "eng", "other", "top"]
    assert next(g for g in found_groups if g.name == "top").description == ""


def test_a_dn_given_many_times_is_one_warning(tmp_path: Path) -> None:
    ben = user("ben", f"ou=partners,ou=people,{BASE}")
    ldif = TREE + ben * 12
    found_users, _, warnings = read_all(make(tmp_path, ldif))
    assert [u.user_name for u in found_users] == ["ann", "ben"]
    (message,) = [m for code, m in warnings if code == "duplicate_entry"]
    first = line_of(ldif, f"uid=ben,ou=partners,ou=people,{BASE}")
    copies = [len(TREE.splitlines()) + 1 + i * len(ben.splitlines()) for i in range(9)]
    assert f"is given at lines {first}, {', '.join(map(str, copies))}, ... (13 records); " \
        f"the entry at line {first} is used" in message


def test_beyond_twenty_duplicate_dns_the_rest_are_summarised(tmp_path: Path) -> None:
    extra = "".join(user(f"u{i:02}") for i in range(25))
    ldif = TREE + extra + extra
    found_users, _, warnings = read_all(make(tmp_path, ldif))
    assert len(found_users) == 27
    assert [code for code, _ in warnings] == ["duplicate_entry"] * 21
    first_of_rest = line_of(ldif, f"uid=u20,ou=people,{BASE}")
    assert warnings[-1][1] == (
        f"ldif connector 't': {tmp_path / 'dir.ldif'}: 5 more DNs are each given by more "
        f"than one record (the next at lines {first_of_rest} and "
        f"{first_of_rest + len(extra.splitlines())}); the first entry of each is used")


def test_warnings_are_not_repeated_when_the_streams_are_read_again(tmp_path: Path) -> None:
    ldif = TREE + user("ann") + f"dn: ou=x,{BASE}\nobjectClass: organizationalUnit\n\n"
    snap = make(tmp_path, ldif, groups={"base": f"ou=x,{BASE}"}).snapshot()
    for _ in range(2):
        assert len(list(snap.users)) == 2
        assert list(snap.groups) == []
    assert sorted(w.code for w in snap.warnings) == ["duplicate_entry", "filter_matched_nothing"]


def test_the_demo_directory_has_nothing_to_warn_about(demo: LdifConnector) -> None:
    snap = demo.snapshot()
    assert (len(list(snap.users)), len(list(snap.groups))) == (40, 13)
    assert snap.warnings == []

# -- DNs in every RFC 4514 form -----------------------------------------------------------
# (issue 17, item 2: each of these failed the run, or dropped or merged members)

PEOPLE = f"ou=people,{BASE}"


def entry(dn: str, *lines: str) -> str:
    return "\n".join([f"dn: {dn}", *lines]) + "\n\n"


def b64_entry(dn: str, *lines: str) -> str:
    """A record whose DN is base64 (as LDIF writes a DN ending in a space)."""
    return "\n".join([f"dn:: {base64.b64encode(dn.encode()).decode()}", *lines]) + "\n\n"


def person_at(dn: str, uid: str) -> str:
    return entry(dn, "objectClass: inetOrgPerson", f"uid: {uid}", "sn: X", "cn: X",
                 f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_DNS, uid)}")


def test_dns_ending_in_an_escaped_space_are_read_and_matched(tmp_path: Path) -> None:
    odd_group = f"cn=#John Smith\\ ,ou=groups,{BASE}"
    ldif = (
        # a group whose cn ends in a space, its members spelt otherwise than the users
        entry(odd_group, "objectClass: groupOfNames", "cn: #John Smith ",
              f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_DNS, 'john')}",
              f"member: uid=trail\\20,{PEOPLE}", f"member: UID=Lead\\ ,OU=People,{BASE}")
        + person_at(f"uid=trail\\ ,{PEOPLE}", "trail ")
        # the DN as LDIF should write one that ends in a space: base64
        + b64_entry(f"uid=lead\\ ,{PEOPLE}", "objectClass: inetOrgPerson", "uid: lead ",
                    "sn: X", "cn: X", f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_DNS, 'lead')}")
        # outside both bases, never in scope: it broke the whole run all the same
        + entry(f"cn=elsewhere\\ ,{BASE}", "objectClass: organizationalRole",
                "cn: elsewhere "))
    conn = make(tmp_path, ldif, groups={"base": f"ou=groups,{BASE}"},
                users={"base": PEOPLE})
    (g,) = groups(conn)
    found = {u.user_name: u for u in users(conn)}
    assert g.dn == odd_group and g.name == "#John Smith"
    assert g.ref == f"cn=\\#john smith\\ ,ou=groups,{BASE}"
    assert sorted(found) == ["lead", "trail"]
    assert g.members == [found["trail"].ref, found["lead"].ref]
    assert found["lead"].ref == f"uid=lead\\ ,{PEOPLE}"
    # the normal form reads back as itself (explain and rules give it back)
    assert conn.normalise_ref(g.ref) == g.ref == conn.normalise_ref(odd_group)


def test_equals_signs_and_oids_in_member_dns(tmp_path: Path) -> None:
    ldif = (group("g", BASE, [f"cn=A*x=b,{PEOPLE}", f"2.5.4.3=John Smith,{PEOPLE}",
                              f"0.9.2342.19200300.100.1.1=ann,OU=people,{BASE}"])
            + person_at(f"cn=a*x=b,{PEOPLE}", "starry")
            + person_at(f"cn=John Smith,{PEOPLE}", "jsmith")
            + person_at(f"userid=Ann,{PEOPLE}", "ann"))
    conn = make(tmp_path, ldif, users={"base": PEOPLE})
    (g,) = groups(conn)
    found = {u.user_name: u.ref for u in users(conn)}
    assert g.members == [found["starry"], found["jsmith"], found["ann"]]
    assert found["ann"] == f"uid=ann,{PEOPLE}"


def test_names_that_differ_by_case_folding_are_two_users(tmp_path: Path) -> None:
    ldif = (group("g", BASE, [f"uid=STRASSE,{PEOPLE}"])
            + person_at(f"uid=Straße,{PEOPLE}", "Straße") + person_at(f"uid=Strasse,{PEOPLE}",
                                                                 "Strasse"))
    conn = make(tmp_path, ldif)
    found = {u.user_name: u.ref for u in users(conn)}
    assert found == {"Straße": f"uid=straße,{PEOPLE}", "Strasse": f"uid=strasse,{PEOPLE}"}
    assert groups(conn)[0].members == [found["Strasse"]]
