"""Ids: read many at once (an id-only scan) they are the ids ``entry_id`` reads one by one;
entries without one among entries with one are a partial answer. Member DNs as refs."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from connectors.ldapcommon import Attributes
from connectors.ldapmap import Mapper, invalid_member_ref
from syncd.errors import SourceError
from syncd.index import SourceIndex
from syncd.source import SourceGroup, SourceUser

UUIDS = [str(uuid.UUID(int=n * 7919)) for n in range(5)]
VALUES = st.sampled_from([
    *(u.encode() for u in UUIDS),  # as OpenLDAP gives entryUUIDs
    UUIDS[0].upper().encode(),  # capitals: lowered where it is a UUID
    b"Plain-Id", b"id-7",
    b" padded ", b"in side", b"", b"  ", b"two\nlines",  # white space, blank
    "Zoë".encode(), b"\xff\xfe",  # not ASCII, not UTF-8
])


def mapper(schema: str = "rfc4519") -> Mapper:
    return Mapper(schema, Attributes(), frozenset(), event="test")


@settings(max_examples=500)
@given(raws=st.lists(VALUES, max_size=8))
@example(raws=[u.encode() for u in UUIDS])
@example(raws=[b"in side", b""])  # two words in one value, none in the other
def test_plain_ids_are_the_ids_entry_id_reads(raws: list[bytes]) -> None:
    m = mapper()
    one_by_one = [m.entry_id({m.id_attr: [raw]}) for raw in raws]
    plain = m.plain_ids(raws)
    if plain is not None:
        assert plain == one_by_one
    if all(raw in [u.encode() for u in UUIDS] for raw in raws):
        assert plain == one_by_one  # the common case takes the fast way


def test_objectguid_is_never_taken_as_plain_text() -> None:
    m = mapper("ad")
    assert m.id_attr == "objectguid"
    assert m.plain_ids([b"abcdefghijklmnop"]) is None


# -- entries without their id ------------------------------------------------------------

DN = "cn=g{},ou=groups,dc=example,dc=org"


def read(m: Mapper, kind: str, ids: list[str | None]) -> list[str]:
    """Map one entry of ``kind`` per item (None: without its id), as a pass over a source."""
    out = []
    for n, value in enumerate(ids):
        attrs = {} if value is None else {m.id_attr: [value.encode()]}
        out.append(m.id_or_fallback(attrs, DN.format(n), kind, DN.format(n).upper(),
                                    lambda n=n: f"f.ldif:{10 * n + 1}"))
    return out


def test_an_entry_without_its_id_among_entries_with_one_is_a_partial_answer() -> None:
    m = mapper()
    read(m, "group", [UUIDS[0], None, UUIDS[1], None])
    with pytest.raises(SourceError) as info:
        m.check_ids("group", "ldif connector 'demo'")
    assert str(info.value).startswith(
        "ldif connector 'demo': group CN=G1,OU=GROUPS,DC=EXAMPLE,DC=ORG (f.ldif:11) and 1 more "
        "have no entryUUID while 2 other groups have one: ")


def test_a_kind_where_no_entry_has_its_id_keeps_ids_from_dns() -> None:
    m = mapper()
    ids = read(m, "group", [None, None])
    read(m, "user", [UUIDS[0], UUIDS[1]])   # users are judged apart from groups
    m.check_ids("group", "t")
    m.check_ids("user", "t")
    assert ids == [str(uuid.uuid5(uuid.NAMESPACE_X500, DN.format(n))) for n in range(2)]


def test_entries_with_ids_only_pass() -> None:
    m = mapper()
    assert read(m, "user", [UUIDS[2], UUIDS[3]]) == [UUIDS[2], UUIDS[3]]
    m.check_ids("user", "t")


def test_ids_counted_in_another_mapper_count_too() -> None:
    """A delta: the changed entries in one mapper, an id-only scan's counts in another."""
    changed, scan = mapper(), mapper()
    read(changed, "user", [None])
    scan.count_found("user", 40)
    with pytest.raises(SourceError, match=r"^t: user CN=G0.* has no entryUUID while 40 other "
                       r"users have one"):
        changed.check_ids("user", "t", scan)
    alone = mapper()
    read(alone, "user", [None])
    alone.check_ids("user", "t")   # without the scan, nothing says the others have one


# -- member DNs ---------------------------------------------------------------------------

GROUP = "cn=g,ou=groups,dc=example,dc=org"


def members(m: Mapper, *values: str, attr: str = "member") -> list[str]:
    return m.members(GROUP, {attr: [v.encode() for v in values]}, lambda: "f.ldif:1")


def test_valid_member_dns_that_ldap3_rejected_are_refs() -> None:
    refs = members(mapper(), "cn=A*x=b,dc=x", "2.5.4.3=John Smith,dc=x", "cn=trail\\ ,dc=x",
                   "cn=#John Smith\\ ,dc=x")
    assert refs == ["cn=a*x\\=b,dc=x", "cn=john smith,dc=x", "cn=trail\\ ,dc=x",
                    "cn=\\#john smith\\ ,dc=x"]


def test_a_member_dn_ending_in_an_escaped_space_keeps_it() -> None:
    # only white space around the value goes; "\ " is part of the DN
    assert members(mapper(), "  dc=trail\\  \n") == ["dc=trail\\ "]


def test_a_member_value_that_is_not_a_dn_is_a_ref_to_nothing() -> None:
    m = mapper()
    with capture_logs() as logs:
        refs = members(m, "uid=a,dc=x", "cn=a<b,dc=x", "name:alice", "cn=a<b,dc=x")
    assert refs == ["uid=a,dc=x", "invalid DN 'cn=a<b,dc=x'", "invalid DN 'name:alice'"]
    assert refs[1] == invalid_member_ref("cn=a<b,dc=x")
    # logged once a value, with where and why
    assert [(e["event"], e["value"], e["location"]) for e in logs] == [
        ("test.invalid_member", "cn=a<b,dc=x", "f.ldif:1"),
        ("test.invalid_member", "name:alice", "f.ldif:1")]
    assert "'<' must be escaped" in logs[0]["error"]
    # it resolves to nothing, a name ref included: the engine reports it as dangling
    index = SourceIndex()
    index.add_user(SourceUser(external_id="1", ref="uid=a,dc=x", user_name="alice"))
    index.add_group(SourceGroup(external_id="g", ref=GROUP, dn=GROUP, name="g", members=refs))
    index.resolve()
    assert index.members[0].dangling == refs[1:]


def test_the_spelling_of_members_kept_where_asked() -> None:
    m = Mapper("rfc4519", Attributes(), frozenset(), event="test",
               keep_spelling=lambda ref: ref.endswith(",ou=outside,dc=x"))
    refs = members(m, "uid=Straße,OU=Outside,dc=x", "uid=In,ou=people,dc=x", "cn=a<b",
                   "UID=STRASSE,ou=outside,dc=x")
    refs += members(m, "uid=Ann,ou=Outside,dc=x#'0101'B", attr="uniquemember")
    assert refs[0] != refs[3]  # Straße and STRASSE: two users
    assert [m.spelling(r) for r in refs] == [
        "uid=Straße,OU=Outside,dc=x", None, None, "UID=STRASSE,ou=outside,dc=x",
        "uid=Ann,ou=Outside,dc=x"]


def test_a_group_without_a_name_is_named_by_its_rdn() -> None:
    m = Mapper("rfc4519", Attributes.model_validate({"group_name": "displayName"}),
               frozenset(), event="test")
    with capture_logs():
        group = m.group("cn=Trail\\ +uid=x,dc=x", "ignored", {}, lambda: "f.ldif:1")
    assert group.name == "Trail "
