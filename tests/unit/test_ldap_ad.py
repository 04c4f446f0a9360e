"""The ldap connector's Active Directory paths on a scripted transport, without I/O.

These pin the AD-specific logic against canned answers shaped like Windows AD's (which
truncates ``member`` to 1,500 values unasked, as Samba does not): ranged ``member``
retrieval, objectGUID ids, userAccountControl, IN_CHAIN searches and the uSNChanged cursor.
``tests/integration/test_samba_ad.py`` runs the same paths against a real Samba DC.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.ldap import LdapConfig, LdapConnector, unpack_ids
from connectors.ldaptransport import Endpoint, References, Scope

BASE = "dc=corp,dc=example"
GROUP = f"CN=Big,OU=Groups,{BASE}"
SIZE = 3200
GUIDS = {name: uuid.uuid5(uuid.NAMESPACE_DNS, name) for name in ("big", "ann", "bob")}


def user_dn(i: int) -> str:
    return f"CN=u{i},OU=Users,{BASE}"


class ScriptedAd:
    """Answers like a DC: 1,500 values per range, a root DSE with a USN."""

    calls: list[tuple[str, Any]] = []
    usn = 5000
    invocation = uuid.UUID("11111111-2222-3333-4444-555555555555")

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.references = References()  # a DC sends none here

    def search_paged(self, base: str, scope: Scope, filter: str,
                     attributes: list[str]) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        self.calls.append(("search", filter))
        if "1.2.840.113556.1.4.1941" in filter:
            yield user_dn(1), {}
            yield user_dn(7), {}
            return
        if base.startswith("OU=Groups"):
            members = [user_dn(i).encode() for i in range(1500)]
            attrs = {"cn": [b"Big"], "objectguid": [GUIDS["big"].bytes_le]}
            if "member" in attributes:
                attrs["member;range=0-1499"] = members
            yield GROUP, attrs
            return
        for name, uac in (("ann", b"512"), ("bob", b"514")):
            yield f"CN={name},OU=Users,{BASE}", {
                "samaccountname": [name.encode()], "objectguid": [GUIDS[name].bytes_le],
                "useraccountcontrol": [uac], "displayname": [name.title().encode()]}

    def read(self, dn: str, attributes: list[str], filter: str = "(objectClass=*)",
             ) -> dict[str, list[bytes]] | None:
        self.calls.append(("read", attributes))
        if dn == "":
            return {"highestcommittedusn": [str(self.usn).encode()],
                    "dnshostname": [b"DC1.corp.example"],
                    "dsservicename": [f"CN=NTDS Settings,CN=DC1,{BASE}".encode()]}
        if dn.startswith("CN=NTDS Settings"):
            return {"invocationid": [self.invocation.bytes_le]}
        (wanted,) = attributes
        start = int(wanted.split("=")[1].split("-")[0])
        end = min(start + 1499, SIZE - 1)
        key = f"member;range={start}-{'*' if end == SIZE - 1 else end}"
        return {key: [user_dn(i).encode() for i in range(start, end + 1)]}

    def close(self) -> None:
        pass


def connector(**extra: Any) -> LdapConnector:
    config = LdapConfig.model_validate({
        "name": "ad", "type": "ldap", "url": "ldaps://dc1.corp.example", "schema": "ad",
        "bind_dn": "CN=sync,OU=Service,dc=corp,dc=example", "password": "pw-secret",
        "groups": {"base": f"OU=Groups,{BASE}"}, "users": {"base": f"OU=Users,{BASE}"},
        **extra})
    conn = LdapConnector(config, base_dir=Path("."))
    conn.transport_factory = ScriptedAd  # type: ignore[misc]
    ScriptedAd.calls = []
    return conn


def test_ranged_members_guid_ids_and_disabled_users() -> None:
    snap = connector().snapshot()
    (group,) = snap.groups
    assert group.external_id == str(GUIDS["big"])
    assert len(group.members) == SIZE
    assert group.members[-1] == user_dn(SIZE - 1).lower()
    ranges = [a for kind, a in ScriptedAd.calls if kind == "read" and "member" in a[0]]
    assert ranges == [["member;range=1500-*"], ["member;range=3000-*"]]
    users = {u.user_name: u for u in snap.users}
    assert users["ann"].external_id == str(GUIDS["ann"])
    assert (users["ann"].disabled, users["bob"].disabled) == (False, True)
    assert users["bob"].display_name == "Bob"


def test_usn_cursor_and_another_dc() -> None:
    conn = connector()
    cursor = conn.snapshot().cursor
    assert cursor is not None
    assert (cursor["kind"], cursor["usn"], cursor["dc"]) == ("usn", 5000, "dc1.corp.example")
    assert cursor["invocation_id"] == str(ScriptedAd.invocation)
    assert unpack_ids(cursor["group_ids"]) == {str(GUIDS["big"])}
    ScriptedAd.calls = []
    delta = conn.delta(cursor)
    assert delta is not None
    assert ("search", "(&(objectClass=group)(uSNChanged>=5001))") in ScriptedAd.calls
    assert list(delta.removed_groups) == [] and list(delta.removed_users) == []
    ScriptedAd.invocation, before = uuid.uuid4(), ScriptedAd.invocation
    try:
        assert conn.delta(cursor) is None  # restored from backup, or another DC
    finally:
        ScriptedAd.invocation = before


def test_in_chain_asks_the_server_for_flattened_members() -> None:
    snap = connector(in_chain=True).snapshot()
    (group,) = snap.groups
    assert group.members == sorted([user_dn(1).lower(), user_dn(7).lower()])
    chain = [f for kind, f in ScriptedAd.calls if kind == "search" and "1941" in f]
    assert chain == ["(&(&(objectClass=user)(!(objectClass=computer)))"
                     "(memberOf:1.2.840.113556.1.4.1941:=CN=Big,OU=Groups,dc=corp,dc=example))"]
