"""The ldap connector against a real Samba AD DC: objectGUID, userAccountControl, ranged
member retrieval, LDAP_MATCHING_RULE_IN_CHAIN, uSNChanged deltas and bases at the domain
root (continuation references)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from samba import ADMIN_DN, ADMIN_PW, BASE, SambaDc
from structlog.testing import capture_logs

from connectors.ldap import LdapConfig, LdapConnector
from connectors.ldaptransport import Ldap3Transport
from syncd.errors import SourceError

pytestmark = pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")

USERS = f"OU=SyncUsers,{BASE}"
GROUPS = f"OU=SyncGroups,{BASE}"
BIG = 1600  # over AD's 1,500 values per range


@pytest.fixture(scope="module")
def dc(samba_dc: SambaDc) -> SambaDc:
    """The DC with users u0000..u1599 (enabled), 'locked' (disabled) and groups: Big (every
    u*), Outer > Inner > u0001 (nesting), Small."""
    ldap: Any = samba_dc.connection()
    for ou in (USERS, GROUPS):
        ldap.add(ou, "organizationalUnit")
    for i in range(BIG):
        ldap.add(f"CN=u{i:04d},{USERS}", "user",
                 {"sAMAccountName": f"u{i:04d}", "userAccountControl": "544",
                  "displayName": f"User {i}", "mail": f"u{i:04d}@corp.example"})
    ldap.add(f"CN=locked,{USERS}", "user", {"sAMAccountName": "locked",
                                             "userAccountControl": "546"})
    ldap.add(f"CN=Big,{GROUPS}", "group",
             {"member": [f"CN=u{i:04d},{USERS}" for i in range(BIG)]})
    ldap.add(f"CN=Inner,{GROUPS}", "group", {"member": [f"CN=u0001,{USERS}"]})
    ldap.add(f"CN=Outer,{GROUPS}", "group", {"member": [f"CN=Inner,{GROUPS}",
                                                        f"CN=u0002,{USERS}"]})
    ldap.add(f"CN=Small,{GROUPS}", "group", {"member": [f"CN=locked,{USERS}"]})
    ldap.unbind()
    return samba_dc


def make(dc: SambaDc, tmp_path: Path, **extra: Any) -> LdapConnector:
    config = {"name": "ad", "type": "ldap", "url": dc.url, "schema": "ad",
              "tls": {"ca_file": str(dc.ca_file)}, "bind_dn": ADMIN_DN, "password": ADMIN_PW,
              "groups": {"base": GROUPS}, "users": {"base": USERS}, "page_size": 200,
              "retries": 0, **extra}
    return LdapConnector(LdapConfig.model_validate(config), base_dir=tmp_path)


def test_guid_ids_disabled_users_and_large_groups(dc: SambaDc, tmp_path: Path) -> None:
    # Samba, unlike Windows, answers a plain ``member`` request with every value; the ranged
    # path is checked with explicit ranges below.
    snap = make(dc, tmp_path).snapshot()
    groups = {g.name: g for g in snap.groups}
    users = {u.user_name: u for u in snap.users}
    assert len(groups["Big"].members) == BIG
    assert users["locked"].disabled and not users["u0001"].disabled
    assert users["u0001"].display_name == "User 1"
    # the GUID string is the entry's objectGUID: searching by its bytes finds the entry
    guid = uuid.UUID(users["u0001"].external_id)
    ldap: Any = dc.connection()
    escaped = "".join(f"\\{b:02x}" for b in guid.bytes_le)
    ldap.search(USERS, f"(objectGUID={escaped})", attributes=["sAMAccountName"])
    assert [str(e["attributes"]["sAMAccountName"]) for e in ldap.response
            if e["type"] == "searchResEntry"] == ["u0001"]
    ldap.unbind()
    assert snap.cursor is not None and snap.cursor["kind"] == "usn"
    assert snap.cursor["dc"] == "dc1.corp.example" and snap.cursor["invocation_id"]


def test_explicit_range_retrieval(dc: SambaDc, tmp_path: Path) -> None:
    conn = make(dc, tmp_path)
    transport = Ldap3Transport(conn.endpoint())
    try:
        first = transport.read(f"CN=Big,{GROUPS}", ["member;range=0-1499"])
        assert first is not None
        (key,) = first
        assert key == "member;range=0-1499" and len(first[key]) == 1500
        attrs = dict(first)
        conn._expand_ranges(transport, f"CN=Big,{GROUPS}", attrs, conn.mapper())
        assert list(attrs) == ["member"] and len(set(attrs["member"])) == BIG
    finally:
        transport.close()


def test_in_chain_flattens_on_the_server(dc: SambaDc, tmp_path: Path) -> None:
    groups = {g.name: g for g in make(dc, tmp_path, in_chain=True).snapshot().groups}
    assert sorted(groups["Outer"].members) == [f"cn=u0001,{USERS}".lower(),
                                               f"cn=u0002,{USERS}".lower()]
    assert groups["Inner"].members == [f"cn=u0001,{USERS}".lower()]


def test_usn_delta(dc: SambaDc, tmp_path: Path) -> None:
    conn = make(dc, tmp_path)
    full = conn.snapshot()
    assert full.cursor is not None
    ldap: Any = dc.connection()
    from ldap3 import MODIFY_ADD, MODIFY_REPLACE

    ldap.modify(f"CN=Small,{GROUPS}", {"member": [(MODIFY_ADD, [f"CN=u0005,{USERS}"])]})
    ldap.modify(f"CN=u0007,{USERS}", {"userAccountControl": [(MODIFY_REPLACE, ["546"])]})
    ldap.add(f"CN=Fresh,{GROUPS}", "group", {"member": [f"CN=u0003,{USERS}"]})
    ldap.delete(f"CN=Inner,{GROUPS}")
    ldap.unbind()
    delta = conn.delta(full.cursor)
    assert delta is not None
    changed = {g.name: g for g in delta.groups}
    # Outer changes too: AD drops the deleted Inner from its member list
    assert {"Small", "Fresh"} <= set(changed) <= {"Small", "Fresh", "Outer"}
    assert sorted(changed["Small"].members) == [f"cn=locked,{USERS}".lower(),
                                                f"cn=u0005,{USERS}".lower()]
    assert [(u.user_name, u.disabled) for u in delta.users] == [("u0007", True)]
    inner = {g.name: g.external_id for g in full.groups}["Inner"]
    assert list(delta.removed_groups) == [inner]
    assert delta.cursor["usn"] > full.cursor["usn"]
    again = conn.delta(delta.cursor)
    assert again is not None and list(again.groups) == [] and list(again.users) == []
    # another DC (here: a changed invocationId) means a full run
    assert conn.delta({**delta.cursor, "invocation_id": str(uuid.uuid4())}) is None


def test_simple_bind_needs_tls_on_samba(dc: SambaDc, tmp_path: Path) -> None:
    plain = make(dc, tmp_path, url="ldap://127.0.0.1:389")
    with pytest.raises(SourceError, match="ldap connector 'ad'"):
        plain.snapshot()
    starttls = make(dc, tmp_path, url="ldap://127.0.0.1:389", start_tls=True)
    assert starttls.test_connection()["users"] == BIG + 1



def test_bases_at_the_domain_root(dc: SambaDc, tmp_path: Path) -> None:
    """A subtree search from the domain root meets continuation references to the DC's
    other naming contexts (here the configuration partition; Windows adds its DNS zones):
    not followed, logged once per run, shown by test-connection; ``referrals: fail``
    refuses them."""
    roots = {"groups": {"base": BASE}, "users": {"base": BASE}}
    conn = make(dc, tmp_path, **roots)
    with capture_logs() as logs:
        full = conn.snapshot()
    users = {u.user_name for u in full.users}
    assert {"u0000", f"u{BIG - 1:04d}", "locked", "Administrator"} <= users
    groups = {g.name: g for g in full.groups}
    assert {"Big", "Outer", "Domain Admins"} <= set(groups)
    assert len(groups["Big"].members) == BIG
    configuration = f"CN=Configuration,{BASE}"
    (event,) = [e for e in logs if e["event"] == "ldap.continuation_references"]
    assert event["count"] == 2  # one in each base's search
    assert [uri.rsplit("/", 1)[-1] for uri in event["uris"]] == [configuration]
    uris = event["uris"]
    # the delta's searches for changes and its id-only scans: four, in one event
    assert full.cursor is not None
    with capture_logs() as logs:
        delta = conn.delta(full.cursor)
    assert delta is not None
    assert (list(delta.removed_users), list(delta.removed_groups)) == ([], [])
    assert [(e["count"], e["uris"]) for e in logs
            if e["event"] == "ldap.continuation_references"] == [(4, uris)]
    report = conn.test_connection()
    assert report["references"] == {"count": 2, "uris": uris}
    assert report["users"] == len(users)
    strict = make(dc, tmp_path, referrals="fail", **roots)
    with pytest.raises(SourceError) as info:
        strict.snapshot()
    assert str(info.value) == (
        f"ldap connector 'ad' ({dc.url}): continuation reference to {uris[0]} (searching "
        f"'{BASE}' for (objectClass=group)): not followed, and referrals: fail refuses it")
