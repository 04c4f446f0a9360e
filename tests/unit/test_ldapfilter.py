"""RFC 4515 filters evaluated in Python: every operator, nesting, case and escapes."""

from __future__ import annotations

import uuid

import pytest

from connectors.ldapfilter import FilterError, compile_filter, unescape
from connectors.objectclass import SUPERIORS

GUID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")

ENTRY: dict[str, list[bytes | str]] = {
    "objectclass": [b"top", b"groupOfNames"],
    "cn": [b"Platform Team", b"platform"],
    "description": ["Runs the *core* (infra) \\ tools"],
    "gidnumber": [b"10"],
    "mail": [b"ZO\xc3\x8b@EXAMPLE.ORG"],  # "ZOË@EXAMPLE.ORG"
    "useraccountcontrol": [b"514"],
    "objectguid": [GUID.bytes_le],
    "modifytimestamp": [b"20240115103000Z"],
}


def matches(text: str, entry: dict[str, list[bytes | str]] | None = None) -> bool:
    return compile_filter(text).matches(ENTRY if entry is None else entry)


@pytest.mark.parametrize(("text", "expected"), [
    ("(objectClass=groupOfNames)", True),
    ("(objectclass=GROUPOFNAMES)", True),
    ("(OBJECTCLASS=groupofnames)", True),
    ("(objectClass=posixGroup)", False),
    ("(cn=platform team)", True),
    ("(cn=Platform)", True),          # any value may match
    ("(cn=Platfor)", False),
    ("(mail=zoë@example.org)", True),  # Unicode case folding
    ("(sn=anything)", False),          # absent attribute
])
def test_equality(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("(cn=*)", True),
    ("(CN=*)", True),
    ("(sn=*)", False),
    ("(objectClass=*)", True),
])
def test_presence(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_presence_needs_a_value() -> None:
    assert not matches("(cn=*)", {"cn": []})


@pytest.mark.parametrize(("text", "expected"), [
    ("(cn=plat*)", True),
    ("(cn=PLAT*)", True),
    ("(cn=*team)", True),
    ("(cn=*TEAM)", True),
    ("(cn=*form*)", True),
    ("(cn=p*f*m*m)", True),
    ("(cn=*orm*orm*)", False),
    ("(cn=team*)", False),
    ("(cn=*plat)", False),
    ("(cn=pla*tea*m)", True),
    ("(cn=team*platform)", False),    # pieces must come in order
])
def test_substrings(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_substring_pieces_do_not_overlap() -> None:
    assert not matches("(cn=ab*ba)", {"cn": [b"aba"]})
    assert matches("(cn=ab*ba)", {"cn": [b"abba"]})
    assert not matches("(cn=*ab*ab*)", {"cn": [b"xab"]})
    assert matches("(cn=*ab*ab*)", {"cn": [b"abab"]})


@pytest.mark.parametrize(("text", "expected"), [
    ("(gidNumber>=10)", True),
    ("(gidNumber>=9)", True),      # numbers compare as numbers, not "10" < "9"
    ("(gidNumber>=11)", False),
    ("(gidNumber<=10)", True),
    ("(gidNumber<=9)", False),
    ("(gidNumber<=100)", True),
    ("(modifyTimestamp>=20240101000000Z)", True),
    ("(modifyTimestamp<=20231231235959Z)", False),
    ("(cn<=PLATFORM)", True),      # case-insensitive string order
    ("(cn>=q)", False),
])
def test_ordering(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_approx_is_equality() -> None:
    assert matches("(cn~=PLATFORM TEAM)")
    assert not matches("(cn~=platformteam)")


@pytest.mark.parametrize(("text", "expected"), [
    ("(&(objectClass=groupOfNames)(cn=platform))", True),
    ("(&(objectClass=groupOfNames)(cn=nope))", False),
    ("(|(cn=nope)(gidNumber=10))", True),
    ("(|(cn=nope)(gidNumber=11))", False),
    ("(!(cn=nope))", True),
    ("(!(cn=platform))", False),
    ("(&(objectClass=group*)(!(|(cn=nope)(sn=*)))(|(gidNumber<=5)(cn=*team)))", True),
    ("(&(objectClass=group*)(!(|(cn=nope)(cn=platform))))", False),
    ("(!(!(cn=platform)))", True),
])
def test_and_or_not(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    (r"(description=runs the \2acore\2a \28infra\29 \5c tools)", True),
    (r"(description=*\2acore\2a*)", True),
    (r"(description=*\2Acore\2A*)", True),   # upper-case hex is fine
    (r"(description=\2a*)", False),          # the value does not start with a star
    (r"(cn=\50latform)", True),              # \50 is "P"
    (r"(mail=zo\c3\ab@example.org)", True),  # escaped UTF-8
])
def test_escaped_values(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_literal_star_is_not_a_wildcard() -> None:
    assert not matches(r"(cn=plat\2a)")
    assert matches(r"(cn=plat\2a)", {"cn": [b"plat*"]})


def test_binary_assertion_compares_bytes() -> None:
    escaped = "".join(f"\\{b:02x}" for b in GUID.bytes_le)
    assert matches(f"(objectGUID={escaped})")
    assert not matches(f"(objectGUID={escaped[:-3]}\\00)")
    assert matches(f"(objectGUID={escaped[:12]}*)")


def test_unescape() -> None:
    assert unescape(rb"a\2ab\5c\28") == b"a*b\\("
    with pytest.raises(FilterError, match="two hex digits"):
        unescape(rb"a\zz")
    with pytest.raises(FilterError):
        compile_filter(r"(cn=a\zzb)")


@pytest.mark.parametrize(("text", "expected"), [
    ("(userAccountControl:1.2.840.113556.1.4.803:=2)", True),
    ("(userAccountControl:1.2.840.113556.1.4.803:=3)", False),  # needs both bits
    ("(userAccountControl:1.2.840.113556.1.4.804:=3)", True),   # either bit
    ("(userAccountControl:1.2.840.113556.1.4.804:=1)", False),
    ("(!(userAccountControl:1.2.840.113556.1.4.803:=2))", False),
    ("(cn:caseExactMatch:=platform)", True),
    ("(cn:caseExactMatch:=PLATFORM)", False),
    ("(cn:=PLATFORM)", True),
    ("(cn:caseIgnoreMatch:=PLATFORM)", True),
])
def test_extensible(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize("text", [
    "(member:1.2.840.113556.1.4.1941:=cn=x)",   # needs the server
    "(cn:dn:=platform)",
    "(:dn:2.5.13.5:=x)",
    "(userAccountControl:1.2.840.113556.1.4.803:=two)",
])
def test_unsupported_extensible_matches_are_refused(text: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(text)


@pytest.mark.parametrize("text", ["", "cn=a", "(cn=a", "(&(cn=a)", "(!(a=b)(c=d))", "(cn=a(b)"])
def test_malformed_filters(text: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(text)


def test_attributes_lists_every_name_lower_case() -> None:
    compiled = compile_filter("(&(objectClass=user)(!(objectClass=computer))(|(sAMAccountName=a*)"
                              "(userAccountControl:1.2.840.113556.1.4.803:=2)))")
    assert compiled.attributes == {"objectclass", "samaccountname", "useraccountcontrol"}


def test_values_may_be_str_or_bytes() -> None:
    assert matches("(cn=platform)", {"cn": ["Platform"]})
    assert matches("(cn=platform)", {"cn": [b"Platform"]})


def test_undecodable_value_only_matches_byte_for_byte() -> None:
    entry: dict[str, list[bytes | str]] = {"x": [b"\xffAB"]}
    assert matches(r"(x=\ffAB)", entry)
    assert not matches(r"(x=\ffab)", entry)
    assert matches(r"(x=\ff*)", entry)


# -- object class inheritance (issue 17, item 3) -------------------------------------------

def classes(*names: str) -> dict[str, list[bytes | str]]:
    """An entry holding only these object classes."""
    return {"objectclass": [n.encode() for n in names]}


@pytest.mark.parametrize(("text", "entry_classes", "expected"), [
    # a subclass satisfies its superiors, at any depth
    ("(objectClass=person)", ["inetOrgPerson"], True),
    ("(objectClass=organizationalPerson)", ["inetOrgPerson"], True),
    ("(objectClass=person)", ["residentialPerson"], True),
    ("(objectClass=person)", ["OpenLDAPperson"], True),
    ("(objectClass=inetOrgPerson)", ["OpenLDAPperson"], True),    # two superiors
    ("(objectClass=pilotPerson)", ["OpenLDAPperson"], True),
    # never the other way round, nor sideways
    ("(objectClass=inetOrgPerson)", ["person"], False),
    ("(objectClass=inetOrgPerson)", ["organizationalPerson"], False),
    ("(objectClass=organizationalPerson)", ["residentialPerson"], False),
    ("(objectClass=groupOfNames)", ["groupOfUniqueNames"], False),
    ("(objectClass=posixAccount)", ["inetOrgPerson"], False),
    # two names of one class (RFC 1274)
    ("(objectClass=pilotPerson)", ["newPilotPerson"], True),
    ("(objectClass=newPilotPerson)", ["pilotPerson"], True),
    # class names and OIDs, on either side, in any case
    ("(objectClass=PERSON)", ["INETORGPERSON"], True),
    ("(objectClass=2.5.6.6)", ["inetOrgPerson"], True),
    ("(objectClass=person)", ["2.16.840.1.113730.3.2.2"], True),
    ("(objectClass=2.5.6.7)", ["person"], False),
    ("(objectClass~=person)", ["inetOrgPerson"], True),           # approx is equality
    # Active Directory: computer is a user is an organizationalPerson
    ("(objectClass=user)", ["computer"], True),
    ("(objectClass=organizationalPerson)", ["user"], True),
    ("(objectClass=person)", ["computer"], True),
    ("(&(objectClass=user)(!(objectClass=computer)))", ["user"], True),
    ("(&(objectClass=user)(!(objectClass=computer)))", ["computer"], False),
    ("(objectClass=group)", ["user"], False),
    # top: every entry with a class, known or not
    ("(objectClass=top)", ["organizationalUnit"], True),
    ("(objectClass=2.5.6.0)", ["siteSpecificThing"], True),
    ("(objectClass=top)", [], False),
    # a class the table does not know: literal, as before
    ("(objectClass=examplePerson)", ["examplePerson"], True),
    ("(objectClass=examplePerson)", ["inetOrgPerson"], False),
    ("(objectClass=person)", ["examplePerson"], False),
])
def test_object_class_matches_its_subclasses(text: str, entry_classes: list[str],
                                             expected: bool) -> None:
    assert matches(text, classes(*entry_classes)) is expected


def test_object_class_inheritance_is_only_for_equality() -> None:
    # substring and ordering assertions on objectClass stay literal text comparisons
    assert matches("(objectClass=inet*)", classes("inetOrgPerson"))
    assert not matches("(objectClass=pers*)", classes("inetOrgPerson"))


def test_other_attributes_do_not_inherit() -> None:
    assert not matches("(description=person)", {"description": [b"inetOrgPerson"]})


def test_the_class_table_is_whole() -> None:
    # every superior named is in the table, and names of one class share its superiors
    by_oid: dict[str, tuple[str, ...]] = {}
    for name, (oid, superiors) in SUPERIORS.items():
        assert all(sup in SUPERIORS for sup in superiors), name
        assert by_oid.setdefault(oid, superiors) == superiors, name
    assert SUPERIORS["top"] == ("2.5.6.0", ())
    assert all(name == "top" or superiors for name, (_, superiors) in SUPERIORS.items())
