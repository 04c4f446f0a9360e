"""The ldap connector against a real OpenLDAP slapd: mapping, paging, TLS, deltas, failures."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from ldapdata import (
    BIG_SIZE,
    ESCAPED_GROUP,
    ESCAPED_USER,
    GROUPS,
    OUTSIDE,
    PEOPLE,
    POSIX,
    SUFFIX,
    directory,
    uid_for,
    user_dn,
)
from slapd import LIMITED_DN, LIMITED_PW, ROOT_DN, ROOT_PW, Slapd
from structlog.testing import capture_logs

from connectors.dn import normalise_dn
from connectors.ldap import LdapConfig, LdapConnector
from connectors.ldaptransport import Endpoint, Ldap3Transport, Scope
from syncd.errors import SourceError
from syncd.source import Snapshot, SourceGroup

# ldap3 checks host names with ssl.match_hostname, deprecated in Python 3.7+ (still works)
pytestmark = [pytest.mark.slapd,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]
SlapdFactory = Callable[..., Slapd]


def make(server: Slapd, tmp_path: Path, *, needed: frozenset[str] = frozenset(),
         **overrides: Any) -> LdapConnector:
    """A connector on ``server`` bound as the root DN, page size 5, one retry at most."""
    config: dict[str, Any] = {
        "name": "corp", "type": "ldap", "url": server.url, "bind_dn": ROOT_DN,
        "password": ROOT_PW, "page_size": 5, "retries": 0,
        "groups": {"base": GROUPS}, "users": {"base": PEOPLE}, "delta_overlap": "1s",
    }
    config.update(overrides)
    return LdapConnector(LdapConfig.model_validate(config), base_dir=tmp_path,
                         needed_attributes=needed)


def by_name(snap: Snapshot) -> dict[str, SourceGroup]:
    return {g.name: g for g in snap.groups}


@pytest.fixture
def server(slapd_factory: SlapdFactory) -> Slapd:
    return slapd_factory(directory())


# -- mapping ------------------------------------------------------------------------------

def test_full_snapshot_maps_groups_and_users(server: Slapd, tmp_path: Path) -> None:
    snap = make(server, tmp_path).snapshot()
    groups = by_name(snap)
    assert sorted(groups) == sorted(["staff", "devs", "R&D, Team+1", "unique", "big",
                                     "external", "spare"])
    staff = groups["staff"]
    assert staff.external_id == uid_for("group-staff")
    assert staff.description == "All staff"
    # nesting with a cycle: staff -> devs -> staff, both kept as refs
    assert f"cn=devs,{GROUPS}" in staff.members
    assert f"cn=staff,{GROUPS}" in groups["devs"].members
    # an escaped DN (comma) as a member, normalised to the entry's own ref
    users = {u.user_name: u for u in snap.users}
    assert users["jsmith"].ref == normalise_dn(ESCAPED_USER) in staff.members
    assert users["jsmith"].display_name == "Smith, John"
    # comma and plus in a group's cn
    escaped = groups["R&D, Team+1"]
    assert escaped.ref == normalise_dn(ESCAPED_GROUP)
    assert normalise_dn(escaped.dn) == normalise_dn(ESCAPED_GROUP)
    # non-ASCII values
    assert users["zoe"].display_name == "Zoë Ångström"
    assert groups["devs"].description == "Développeurs"
    # groupOfUniqueNames, the optional UID bits dropped
    assert groups["unique"].members == [user_dn("bob"), user_dn("zoe")]
    # a group larger than the page size (5), and more users than a page
    assert len(groups["big"].members) == BIG_SIZE
    assert len({u.external_id for u in snap.users}) == len(snap.users) >= BIG_SIZE + 5


def test_posixgroup_member_uids_are_name_refs(server: Slapd, tmp_path: Path) -> None:
    snap = make(server, tmp_path, schema="rfc2307", groups={"base": POSIX}).snapshot()
    (pg,) = snap.groups
    assert pg.members == ["name:alice", "name:bob"]
    # the rfc2307 preset's user filter: posixAccount only
    assert sorted(u.user_name for u in snap.users) == ["alice", "bob"]


def test_scopes_and_filters(server: Slapd, tmp_path: Path) -> None:
    one = make(server, tmp_path, groups={"base": SUFFIX, "scope": "one"}).snapshot()
    assert list(one.groups) == []
    base = make(server, tmp_path, groups={"base": f"cn=big,{GROUPS}", "scope": "base"})
    assert [g.name for g in base.snapshot().groups] == ["big"]
    filtered = make(server, tmp_path, groups={"base": GROUPS,
                                              "filter": "(businessCategory=sync)"})
    assert [g.name for g in filtered.snapshot().groups] == ["devs"]


def test_needed_attributes_and_overrides(server: Slapd, tmp_path: Path) -> None:
    conn = make(server, tmp_path, needed=frozenset({"businesscategory"}),
                attributes={"display_name": "mail",
                            "user_disabled": {"name": "nsAccountLock", "equals": "TRUE"}})
    snap = conn.snapshot()
    assert by_name(snap)["devs"].attributes == {"businesscategory": ["sync"]}
    assert by_name(snap)["staff"].attributes == {}
    users = {u.user_name: u for u in snap.users}
    assert users["locked"].disabled and not users["alice"].disabled
    assert users["alice"].display_name == "alice@example.org"


def test_only_needed_attributes_are_requested(server: Slapd, tmp_path: Path) -> None:
    asked: list[list[str]] = []

    class Recording(Ldap3Transport):
        def search_paged(self, base: str, scope: Scope, filter: str,
                         attributes: list[str]) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
            asked.append(sorted(attributes))
            yield from super().search_paged(base, scope, filter, attributes)

    conn = make(server, tmp_path)
    conn.transport_factory = Recording  # type: ignore[misc]
    conn.snapshot()
    assert asked == [["cn", "description", "entryuuid", "member", "uniquemember"],
                     ["cn", "entryuuid", "mail", "uid"]]


def test_members_outside_the_bases(server: Slapd, tmp_path: Path) -> None:
    with capture_logs() as logs:
        snap = make(server, tmp_path).snapshot()
    users = {u.user_name: u for u in snap.users}
    # read with a base-scope search although ou=outside is not under the users base
    assert users["outsider"].ref == f"uid=outsider,{OUTSIDE}"
    missing = [e for e in logs if e["event"] == "ldap.member_not_found"]
    assert [e["dn"] for e in missing] == [f"uid=ghost,{OUTSIDE}"]
    assert missing[0]["log_level"] == "warning"
    # a dangling DN inside the users base stays a ref: the engine reports it
    assert user_dn("ghost2") in by_name(snap)["external"].members


# -- ids ----------------------------------------------------------------------------------

def number_users(server: Slapd, *, skip: str | None = None) -> dict[str, str]:
    """Give every inetOrgPerson an employeeNumber (E-uid), but the entry ``skip``."""
    ldap: Any = server.connection()
    ldap.search(SUFFIX, "(objectClass=inetOrgPerson)", attributes=["uid"])
    numbers = {}
    for found in list(ldap.entries):
        if found.entry_dn == skip:
            continue
        number = f"E-{found.uid.value}"
        ldap.modify(found.entry_dn, {"employeeNumber": [(MODIFY_REPLACE, [number])]})
        numbers[found.uid.value] = number
    assert len(numbers) >= BIG_SIZE + 5
    return numbers


@pytest.mark.parametrize("lacking", [user_dn("bob"), f"uid=outsider,{OUTSIDE}"])
def test_a_user_without_the_id_attribute_among_users_with_one_fails(
        server: Slapd, tmp_path: Path, lacking: str) -> None:
    """bob in the users base; outsider read on its own as a member outside the bases."""
    number_users(server, skip=lacking)
    conn = make(server, tmp_path, attributes={"id": "employeeNumber"})
    with pytest.raises(SourceError) as info:
        conn.snapshot()
    message = str(info.value)
    assert message.startswith(f"ldap connector 'corp': user {lacking} ({server.url}) has no "
                              "employeeNumber while ")
    assert "other users have one" in message and "\n" not in message


def test_users_and_groups_are_judged_apart(server: Slapd, tmp_path: Path) -> None:
    """Every user has an employeeNumber and no group has one: ids from DNs for the groups."""
    numbers = number_users(server)
    with capture_logs() as logs:
        snap = make(server, tmp_path, attributes={"id": "employeeNumber"}).snapshot()
    assert {u.user_name: u.external_id for u in snap.users} == numbers
    assert by_name(snap)["staff"].external_id == str(
        uuid.uuid5(uuid.NAMESPACE_X500, f"cn=staff,{GROUPS}"))
    fallbacks = [e for e in logs if e["event"] == "ldap.ids_from_dn"]
    assert [(e["kind"], e["count"]) for e in fallbacks] == [("group", 7)]


def test_a_delta_fails_when_a_user_lost_the_id_attribute(server: Slapd, tmp_path: Path,
                                                         ) -> None:
    number_users(server)
    time.sleep(2.1)
    conn = make(server, tmp_path, attributes={"id": "employeeNumber"})
    full = conn.snapshot()
    assert full.cursor is not None
    time.sleep(1.1)
    ldap: Any = server.connection()
    ldap.modify(user_dn("bob"), {"employeeNumber": [(MODIFY_DELETE, [])]})
    ldap.modify(f"cn=big,{GROUPS}", {"member": [(MODIFY_ADD, [user_dn("zoe")])]})
    time.sleep(2.1)
    begun = conn.begin_delta(full.cursor)
    assert begun is not None
    assert [u.user_name for u in begun.users] == ["bob"]  # changed, with an id from its DN
    with pytest.raises(SourceError, match=rf"^ldap connector 'corp': user {user_dn('bob')} "
                       r"\(ldap://[^)]+\) has no employeeNumber while \d+ other users have"):
        begun.settle()
    # the id-only scans judge on their own: a cursor whose window starts after bob's change
    later = {**full.cursor, "since": datetime.now(UTC).strftime("%Y%m%d%H%M%SZ")}
    begun = conn.begin_delta(later)
    assert begun is not None and list(begun.users) == []
    with pytest.raises(SourceError, match=rf"user {user_dn('bob')} .* has no employeeNumber"):
        begun.settle()


# -- TLS and binds ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_tls_verifies_against_the_given_ca(server: Slapd, tmp_path: Path, mode: str) -> None:
    url = server.ldaps_url if mode == "ldaps" else server.url
    extra: dict[str, Any] = {"url": url, "start_tls": mode == "starttls"}
    good = make(server, tmp_path, tls={"ca_file": str(server.ca_file)}, **extra)
    assert good.test_connection()["groups"] == 7
    wrong = make(server, tmp_path, tls={"ca_file": str(server.other_ca_file)}, **extra)
    with pytest.raises(SourceError, match=r"TLS failed.*certificate verify failed"):
        wrong.test_connection()
    # the system store does not know the fixture CA either: verification is on by default
    with pytest.raises(SourceError, match="certificate verify failed"):
        make(server, tmp_path, **extra).test_connection()
    unverified = make(server, tmp_path, tls={"verify": False}, **extra)
    assert unverified.test_connection()["groups"] == 7


def test_sasl_external_with_a_client_certificate(server: Slapd, tmp_path: Path) -> None:
    conn = make(server, tmp_path, url=server.ldaps_url, bind_dn=None, password=None,
                sasl="external", tls={"ca_file": str(server.ca_file),
                                      "cert_file": str(server.certs / "client.crt"),
                                      "key_file": str(server.certs / "client.key")})
    assert conn.test_connection()["bind"] == "sasl external"
    assert len(list(conn.snapshot().groups)) == 7


def test_clear_text_bind_to_a_remote_host_is_refused_before_connecting(tmp_path: Path) -> None:
    config = {"name": "corp", "type": "ldap", "url": "ldap://192.0.2.1:389",
              "bind_dn": ROOT_DN, "password": ROOT_PW, "groups": {"base": GROUPS},
              "users": {"base": PEOPLE}, "retries": 0, "timeouts": {"connect": "1s"}}
    conn = LdapConnector(LdapConfig.model_validate(config), base_dir=tmp_path)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"refusing a clear-text simple bind to 192\.0\.2\.1") \
            as err:
        conn.snapshot()
    assert time.monotonic() - started < 0.5
    assert ROOT_PW not in str(err.value)
    allowed = LdapConnector(LdapConfig.model_validate({**config, "allow_insecure": True}),
                            base_dir=tmp_path)
    with pytest.raises(SourceError, match="cannot connect"):
        allowed.snapshot()


def test_endpoint_loopback_rules() -> None:
    for url in ("ldap://127.0.0.1", "ldap://localhost:389", "ldap://[::1]:389"):
        Endpoint(url=url, bind_dn="cn=x", password="pw").check_insecure()
    for ok in (Endpoint(url="ldaps://remote.example", password="pw"),
               Endpoint(url="ldap://remote.example", start_tls=True, password="pw"),
               Endpoint(url="ldap://remote.example")):
        ok.check_insecure()
    with pytest.raises(SourceError):
        Endpoint(url="ldap://remote.example", bind_dn="cn=x", password="pw").check_insecure()
    assert "hidden-pw-1" not in repr(Endpoint(url="ldap://x", password="hidden-pw-1"))


# -- failures -----------------------------------------------------------------------------

def test_bind_refused(server: Slapd, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"corp.*bind refused") as err:
        make(server, tmp_path, password="wrong-password-x").snapshot()
    assert "wrong-password-x" not in str(err.value)


def test_server_down_is_retried_then_fails(server: Slapd, tmp_path: Path) -> None:
    server.stop()
    with capture_logs() as logs, pytest.raises(SourceError, match="cannot connect"):
        make(server, tmp_path, retries=2).snapshot()
    assert [e["attempt"] for e in logs if e["event"] == "ldap.retry"] == [1, 2]


def test_server_back_within_the_retries(server: Slapd, tmp_path: Path) -> None:
    calls = []

    class Flaky(Ldap3Transport):
        def __init__(self, endpoint: Endpoint) -> None:
            calls.append(1)
            if len(calls) == 1:
                server.stop()
            elif not server.running:
                server.start()
            super().__init__(endpoint)

    conn = make(server, tmp_path, retries=2)
    conn.transport_factory = Flaky  # type: ignore[misc]
    assert len(list(conn.snapshot().groups)) == 7
    assert len(calls) == 2


def test_server_killed_in_the_middle_of_paging(server: Slapd, tmp_path: Path) -> None:
    pages: list[int] = []

    class Killing(Ldap3Transport):
        def search_paged(self, base: str, scope: Scope, filter: str,
                         attributes: list[str]) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
            for n, item in enumerate(super().search_paged(base, scope, filter, attributes)):
                pages.append(n)
                if n == 6:  # into the second page of 5
                    server.kill()
                yield item

    conn = make(server, tmp_path)
    conn.transport_factory = Killing  # type: ignore[misc]
    with pytest.raises(SourceError, match=r"corp.*connection lost"):
        conn.snapshot()
    assert pages[-1] < 10  # it stopped in the middle, not after a complete answer


def test_size_limit_exceeded(server: Slapd, tmp_path: Path) -> None:
    conn = make(server, tmp_path, bind_dn=LIMITED_DN, password=LIMITED_PW)
    with pytest.raises(SourceError, match="size limit exceeded"):
        conn.snapshot()


REMOTE_PEOPLE = "ldap://people.elsewhere.example/ou=remote,dc=example,dc=org"
REMOTE_GROUPS = "ldap://groups.elsewhere.example/ou=remote,dc=example,dc=org"
# slapd gives the scope of the search to continue in a referral it returns
SUB_PEOPLE, SUB_GROUPS = f"{REMOTE_PEOPLE}??sub", f"{REMOTE_GROUPS}??sub"


def add_referral(server: Slapd, dn: str, *uris: str) -> None:
    """A referral object (RFC 3296) at ``dn``: a subtree search over it returns a search
    continuation reference with ``uris``, a search based at or below it a referral."""
    ldap: Any = server.connection()
    ou = dn.partition(",")[0].removeprefix("ou=")
    ldap.add(dn, ["referral", "extensibleObject"], {"ou": ou, "ref": list(uris)})


def reference_events(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "ldap.continuation_references"]


def test_continuation_references_are_counted_and_logged_once(server: Slapd,
                                                             tmp_path: Path) -> None:
    """Referral objects in both bases: their references are not followed and do not fail
    the run; one event per run names them, full or delta, and test-connection shows them."""
    time.sleep(2.1)  # the loaded entries age past the 1 s overlap
    add_referral(server, f"ou=remote,{PEOPLE}", REMOTE_PEOPLE)
    add_referral(server, f"ou=remote,{GROUPS}", REMOTE_GROUPS, REMOTE_PEOPLE)
    conn = make(server, tmp_path)
    with capture_logs() as logs:
        full = conn.snapshot()
    assert len(list(full.groups)) == 7 and len(full.users) == 31  # 30 and the outsider
    (event,) = reference_events(logs)
    # one reference from each of the two searches (the groups base's holds two URIs)
    assert (event["count"], event["uris"]) == (2, [SUB_GROUPS, SUB_PEOPLE])
    assert event["server"] == server.url and event["log_level"] == "info"
    assert full.cursor is not None
    time.sleep(1.1)
    ldap: Any = server.connection()
    ldap.modify(f"cn=staff,{GROUPS}", {"description": [(MODIFY_REPLACE, ["changed"])]})
    time.sleep(2.1)
    with capture_logs() as logs:
        delta = conn.delta(full.cursor)
    assert delta is not None
    assert [g.name for g in delta.groups] == ["staff"]
    assert (list(delta.removed_groups), list(delta.removed_users)) == ([], [])
    # the searches for changes and the id-only scans of both bases: four references
    (event,) = reference_events(logs)
    assert (event["count"], event["uris"]) == (4, [SUB_GROUPS, SUB_PEOPLE])
    report = conn.test_connection()
    assert (report["groups"], report["users"]) == (7, 30)
    assert report["references"] == {"count": 2, "uris": [SUB_GROUPS, SUB_PEOPLE]}


def test_no_references_no_event(server: Slapd, tmp_path: Path) -> None:
    conn = make(server, tmp_path)
    with capture_logs() as logs:
        conn.snapshot()
    assert reference_events(logs) == []
    assert conn.test_connection()["references"] == {"count": 0, "uris": []}


def test_referrals_fail_refuses_continuation_references(server: Slapd,
                                                        tmp_path: Path) -> None:
    time.sleep(2.1)
    conn = make(server, tmp_path, referrals="fail")
    full = conn.snapshot()  # no referral object yet
    assert full.cursor is not None
    add_referral(server, f"ou=remote,{PEOPLE}", REMOTE_PEOPLE)
    pattern = (r"^ldap connector 'corp' \(ldap://[^)]+\): continuation reference to "
               rf"{re.escape(SUB_PEOPLE)} \(searching 'ou=people,dc=example,dc=org' for "
               r"\(.*\)\): not followed, and referrals: fail refuses it$")
    for attempt in (conn.snapshot, conn.test_connection):
        with pytest.raises(SourceError, match=pattern):
            attempt()
    # a delta meets it in the id-only scan of the users base (nothing changed since)
    time.sleep(2.1)
    with pytest.raises(SourceError, match=pattern):
        conn.delta(full.cursor)


@pytest.mark.parametrize("referrals", ["ignore", "fail"])
def test_a_base_that_is_a_referral_fails(server: Slapd, tmp_path: Path,
                                         referrals: str) -> None:
    """The base itself, or a member DN read on its own, is held elsewhere: a referral as
    the search's result, which fails the run whatever ``referrals`` says."""
    away = f"ou=away,{SUFFIX}"
    add_referral(server, away, REMOTE_PEOPLE)
    conn = make(server, tmp_path, referrals=referrals, users={"base": away})
    with pytest.raises(SourceError) as info:
        conn.snapshot()
    assert str(info.value) == (
        f"ldap connector 'corp' ({server.url}): unexpected referral (searching '{away}' "
        f"for (objectClass=inetOrgPerson)) to {SUB_PEOPLE}: point the connector at the "
        "server that holds the entries")
    # a group's member below the referral object, outside the bases: read on its own
    ldap: Any = server.connection()
    ldap.modify(f"cn=spare,{GROUPS}", {"member": [(MODIFY_ADD, [f"uid=far,{away}"])]})
    with pytest.raises(SourceError, match=rf"unexpected referral \(reading 'uid=far,{away}'\) "
                       r"to ldap://people\.elsewhere\.example/.*: point the connector"):
        make(server, tmp_path, referrals=referrals).snapshot()


# -- aliases ------------------------------------------------------------------------------

HIDDEN = f"uid=hidden,{OUTSIDE}"


def add_aliases(server: Slapd) -> None:
    """A user outside both bases that no group names, an alias to it in the users base,
    and an alias at the top pointing at the ou=outside branch."""
    ldap: Any = server.connection()
    ldap.add(HIDDEN, ["inetOrgPerson"], {"uid": "hidden", "cn": "Hidden", "sn": "Test"})
    ldap.add(f"cn=to-hidden,{PEOPLE}", ["alias", "extensibleObject"],
             {"cn": "to-hidden", "aliasedObjectName": HIDDEN})
    ldap.add(f"ou=to-outside,{SUFFIX}", ["alias", "extensibleObject"],
             {"ou": "to-outside", "aliasedObjectName": OUTSIDE})


@pytest.mark.parametrize(("aliases", "below_base", "at_base"), [
    ("never", False, False),
    ("search", True, False),  # aliases below the base, not the base itself
    ("always", True, True),
])
def test_alias_dereferencing(server: Slapd, tmp_path: Path, aliases: str,
                             below_base: bool, at_base: bool) -> None:
    """The default keeps an aliased entry outside the base out of scope (ldap3's own
    default, derefAlways, brought it in); ``search`` and ``always`` bring it in."""
    add_aliases(server)
    extra = {} if aliases == "never" else {"aliases": aliases}
    snap = make(server, tmp_path, **extra).snapshot()
    names = [u.user_name for u in snap.users]
    assert ("hidden" in names) is below_base
    assert len(names) == len(set(names)) == 31 + below_base
    # the users base is an alias of ou=outside: the outsider (whom a group names) is read
    # by its DN whatever the setting, and once
    based = make(server, tmp_path, users={"base": f"ou=to-outside,{SUFFIX}"}, **extra)
    names = [u.user_name for u in based.snapshot().users]
    assert ("hidden" in names) is at_base
    assert "outsider" in names and len(names) == len(set(names))
    assert based.test_connection()["users"] == (2 if at_base else 0)


def test_an_aliased_user_that_a_group_names_is_read_once(server: Slapd,
                                                         tmp_path: Path) -> None:
    """Dereferenced into scope, then named by a group as a member outside the bases: one
    user, not two; and a delta's id-only scan sees it too (no removal)."""
    time.sleep(2.1)
    add_aliases(server)
    ldap: Any = server.connection()
    ldap.modify(f"cn=spare,{GROUPS}", {"member": [(MODIFY_ADD, [HIDDEN])]})
    conn = make(server, tmp_path, aliases="always")
    full = conn.snapshot()
    assert [u.ref for u in full.users].count(HIDDEN) == 1
    assert HIDDEN in by_name(full)["spare"].members
    assert full.cursor is not None
    time.sleep(2.1)
    delta = conn.delta(full.cursor)
    assert delta is not None
    assert (list(delta.removed_users), list(delta.removed_groups)) == ([], [])
    # a cursor made without dereferencing is not used with it, and the other way round
    assert conn.delta(make(server, tmp_path).snapshot().cursor or {}) is None
    assert make(server, tmp_path).delta(full.cursor) is None


# -- deltas -------------------------------------------------------------------------------

def test_delta_returns_changes_renames_and_deletions(server: Slapd, tmp_path: Path) -> None:
    time.sleep(2.1)  # let the loaded entries age past the 1 s overlap
    conn = make(server, tmp_path)
    full = conn.snapshot()
    assert full.cursor is not None and full.cursor["kind"] == "timestamp"
    time.sleep(1.1)
    ldap: Any = server.connection()
    ldap.modify(f"cn=staff,{GROUPS}", {"member": [(MODIFY_DELETE, [user_dn("bob")])]})
    ldap.modify(f"cn=big,{GROUPS}", {"member": [(MODIFY_ADD, [user_dn("zoe")])]})
    ldap.modify_dn(f"cn=devs,{GROUPS}", "cn=developers")
    ldap.delete(f"cn=spare,{GROUPS}")
    ldap.delete(user_dn("b000"))
    ldap.modify(user_dn("alice"), {"mail": [(MODIFY_REPLACE, ["alice@new.example"])]})
    time.sleep(2.1)  # so that the next cursor (this start less 1 s) is past these changes
    delta = conn.delta(full.cursor)
    assert delta is not None
    changed = {g.name: g for g in delta.groups}
    assert sorted(changed) == ["big", "developers", "staff"]
    assert changed["developers"].external_id == uid_for("group-devs")  # a rename, same id
    assert len(changed["big"].members) == BIG_SIZE + 1  # complete, not the change
    assert user_dn("bob") not in changed["staff"].members
    assert [u.email for u in delta.users] == ["alice@new.example"]
    assert list(delta.removed_groups) == [uid_for("group-spare")]
    assert list(delta.removed_users) == [uid_for("user-b000")]
    # the next delta starts from this one's cursor: nothing new, nothing removed
    again = conn.delta(delta.cursor)
    assert again is not None
    assert (list(again.groups), list(again.removed_groups), list(again.removed_users)) == (
        [], [], [])


def test_the_scan_for_removals_fails_or_retries_after_the_delta_is_begun(
        server: Slapd, tmp_path: Path) -> None:
    time.sleep(2.1)
    full = make(server, tmp_path).snapshot()
    assert full.cursor is not None
    time.sleep(1.1)
    server.connection().delete(f"cn=spare,{GROUPS}")  # type: ignore[attr-defined]
    time.sleep(2.1)
    scans: list[str] = []
    go = threading.Event()  # the scans wait for begin_delta to have returned

    class Killing(Ldap3Transport):
        """The first id-only scan (its filter asks for no change time) kills the server;
        a new connection starts it again."""

        def __init__(self, endpoint: Endpoint) -> None:
            if not server.running:
                server.start()
            super().__init__(endpoint)

        def search_paged(self, base: str, scope: Scope, filter: str,
                         attributes: list[str]) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
            if "modifyTimestamp" not in filter:
                assert go.wait(30)
            for n, item in enumerate(super().search_paged(base, scope, filter, attributes)):
                if "modifyTimestamp" not in filter and n == 5:  # on the second page
                    scans.append(base)
                    if len(scans) == 1:
                        server.kill()
                yield item

    conn = make(server, tmp_path)
    conn.transport_factory = Killing  # type: ignore[misc]
    delta = conn.begin_delta(full.cursor)
    assert delta is not None and delta.pending is not None  # the scans go on meanwhile
    assert sorted(g.name for g in delta.groups) == []
    go.set()
    with pytest.raises(SourceError, match=r"corp.*connection lost"):
        delta.settle()
    assert scans == [GROUPS]
    # with a retry, the scans start again on a new connection and the delta completes
    conn = make(server, tmp_path, retries=1)
    conn.transport_factory = Killing  # type: ignore[misc]
    scans.clear()
    go.clear()  # as above: the kill must not reach the searches for changes, only the scans
    begun = conn.begin_delta(full.cursor)
    assert begun is not None
    go.set()
    begun.settle()
    assert scans == [GROUPS, GROUPS, PEOPLE]  # killed once, then both scans whole
    assert list(begun.removed_groups) == [uid_for("group-spare")]
    assert begun.cursor["kind"] == "timestamp"


def test_a_group_deleted_while_the_delta_reads_is_removed_by_the_next_one(
        server: Slapd, tmp_path: Path) -> None:
    """Changed, then gone before the scan saw it: this delta keeps what it read, and its
    cursor keeps the id, so that the next delta finds it removed."""
    time.sleep(2.1)
    full = make(server, tmp_path).snapshot()
    assert full.cursor is not None
    time.sleep(1.1)
    ldap: Any = server.connection()
    ldap.modify(f"cn=staff,{GROUPS}", {"description": [(MODIFY_REPLACE, ["changed"])]})
    time.sleep(2.1)
    go = threading.Event()

    class Held(Ldap3Transport):
        def search_paged(self, base: str, scope: Scope, filter: str,
                         attributes: list[str]) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
            if "modifyTimestamp" not in filter:  # the id-only scans
                assert go.wait(30)
            yield from super().search_paged(base, scope, filter, attributes)

    conn = make(server, tmp_path)
    conn.transport_factory = Held  # type: ignore[misc]
    delta = conn.begin_delta(full.cursor)
    assert delta is not None
    staff = uid_for("group-staff")
    assert [g.external_id for g in delta.groups] == [staff]
    ldap.delete(f"cn=staff,{GROUPS}")
    go.set()
    delta.settle()
    assert list(delta.removed_groups) == [staff]
    time.sleep(2.1)
    after = make(server, tmp_path).delta(delta.cursor)
    assert after is not None
    assert (list(after.groups), list(after.removed_groups)) == ([], [staff])


def test_cursor_of_another_configuration_means_a_full_run(server: Slapd,
                                                          tmp_path: Path) -> None:
    full = make(server, tmp_path).snapshot()
    assert full.cursor is not None
    assert make(server, tmp_path, needed=frozenset({"owner"})).delta(full.cursor) is None
    assert make(server, tmp_path, groups={"base": SUFFIX}).delta(full.cursor) is None
    assert make(server, tmp_path).delta({"version": 0}) is None


def test_test_connection_counts_and_times(server: Slapd, tmp_path: Path) -> None:
    report = make(server, tmp_path).test_connection()
    assert report["groups"] == 7
    assert report["users"] == 30
    assert set(report["timings"]) == {"connect_and_bind_s", "groups_s", "users_s", "total_s"}
    assert ROOT_PW not in repr(report)


def test_reads_between_pages_do_not_lose_the_paging_cookie(server: Slapd,
                                                            tmp_path: Path) -> None:
    transport = Ldap3Transport(make(server, tmp_path).endpoint())
    try:
        seen = []
        for dn, _ in transport.search_paged(PEOPLE, "subtree", "(objectClass=inetOrgPerson)",
                                            ["uid"]):
            seen.append(dn)
            assert transport.read(f"cn=big,{GROUPS}", ["cn"]) == {"cn": [b"big"]}
        assert len(seen) == 30
        assert transport.read(f"cn=nobody,{GROUPS}", ["cn"]) is None
    finally:
        transport.close()


# -- DNs in every RFC 4514 form (issue 17, item 2) ------------------------------------------
# Members outside the bases are read back by the DN the group gave: the normal form is a key
# for matching, and a server does not know its spelling (Straße folded to "strasse").

ODD_GROUP = f"cn=\\#John Smith\\ ,{GROUPS}"
ODD_OUTSIDERS = {"Straße": f"uid=Straße,{OUTSIDE}", "trail": f"uid=trail\\ ,{OUTSIDE}",
                 "starry": f"cn=A*x=b,{OUTSIDE}"}


@pytest.fixture
def odd_server(slapd_factory: SlapdFactory) -> Slapd:
    """The test directory, with a group whose DN ends in an escaped space and whose members
    outside the bases are DNs ldap3 could not parse or a case fold would change."""
    from ldapdata import group, person

    people = [person(uid, rdn=dn) for uid, dn in ODD_OUTSIDERS.items()]
    odd = group("#John Smith ", [
        *ODD_OUTSIDERS.values(),
        f"0.9.2342.19200300.100.1.1=alice,{PEOPLE}",  # inside the bases, a type by its OID
        f"uid=Gone\\ ,{OUTSIDE}",
    ], rdn=ODD_GROUP)
    return slapd_factory(directory() + "".join(people) + odd)


def test_odd_dns_are_read_and_members_outside_the_bases_read_back_as_given(
        odd_server: Slapd, tmp_path: Path) -> None:
    conn = make(odd_server, tmp_path)
    with capture_logs() as logs:
        full = conn.snapshot()
    odd = next(g for g in full.groups if g.ref == normalise_dn(ODD_GROUP))
    users = {u.user_name: u for u in full.users}
    assert {"Straße", "trail", "starry", "alice"} <= set(users)
    assert users["Straße"].ref == f"uid=straße,{OUTSIDE}"
    assert odd.members == [users["Straße"].ref, users["trail"].ref, users["starry"].ref,
                           users["alice"].ref, normalise_dn(f"uid=Gone\\ ,{OUTSIDE}")]
    # the one that does not exist is reported under the DN the group gave
    missing = [e["dn"] for e in logs if e["event"] == "ldap.member_not_found"]
    assert f"uid=Gone\\ ,{OUTSIDE}" in missing
    assert not [e for e in logs if e["event"] == "ldap.invalid_member"]
    # a delta reads changed groups' outside members the same way (all entries are new)
    assert full.cursor is not None
    delta = conn.delta(full.cursor)
    assert delta is not None
    assert {"Straße", "trail", "starry"} <= {u.user_name for u in delta.users}


def test_a_member_outside_the_bases_is_not_read_back_case_folded(
        slapd_factory: SlapdFactory, tmp_path: Path) -> None:
    from ldapdata import group, person

    server = slapd_factory(directory() + person("Straße", OUTSIDE)
                           + group("folk", [f"uid=Straße,{OUTSIDE}"]))
    with capture_logs() as logs:
        snap = make(server, tmp_path).snapshot()
    (found,) = [u for u in snap.users if u.user_name == "Straße"]
    assert next(g for g in snap.groups if g.name == "folk").members == [found.ref]
    # the directory's own missing member only
    assert [e["dn"] for e in logs if e["event"] == "ldap.member_not_found"] == [
        f"uid=ghost,{OUTSIDE}"]


def test_a_cursor_made_with_another_normal_form_of_dns_means_a_full_run(
        server: Slapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the mirror a delta is laid over holds refs of that form: they would not match
    conn = make(server, tmp_path)
    monkeypatch.setattr("connectors.ldap.NORMAL_FORM_VERSION", 1)
    older = conn.snapshot().cursor
    monkeypatch.undo()
    assert older is not None
    assert conn.delta(older) is None
    current = conn.snapshot().cursor
    assert current is not None
    assert conn.delta(current) is not None
