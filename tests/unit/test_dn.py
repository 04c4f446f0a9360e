"""DN normalisation (connectors/dn.py): one spelling per DN."""

from __future__ import annotations

import pytest

from connectors.dn import in_scope, is_under, normalise_dn, parent_dn


@pytest.mark.parametrize(("dn", "normal"), [
    ("CN=Alice,OU=People,DC=Example,DC=org", "cn=alice,ou=people,dc=example,dc=org"),
    ("cn=alice, ou=people ,dc=example,  dc=org", "cn=alice,ou=people,dc=example,dc=org"),
    ("  cn = Alice , ou=People  ", "cn=alice,ou=people"),
    ("CN=Smith\\, John,OU=People", "cn=smith\\, john,ou=people"),
    ("cn=Smith\\2C John,ou=people", "cn=smith\\, john,ou=people"),
    ("cn=a\\2Bb,dc=x", "cn=a\\+b,dc=x"),
    ("cn=a\\+b,dc=x", "cn=a\\+b,dc=x"),
    ("cn=a\\3Db,dc=x", "cn=a\\=b,dc=x"),
    ("cn=a\\;b,dc=x", "cn=a\\;b,dc=x"),
    ("cn=a\\22b,dc=x", 'cn=a\\"b,dc=x'),
    ("cn=x\\\\y,dc=x", "cn=x\\\\y,dc=x"),
    ("cn=J\\C3\\BCrgen,dc=x", "cn=jürgen,dc=x"),
    ("cn=JÜRGEN,dc=x", "cn=jürgen,dc=x"),
    ("cn=\\#hash,dc=x", "cn=\\#hash,dc=x"),
    ("cn=\\ lead,dc=x", "cn=\\ lead,dc=x"),
    ("UID=b+CN=A,DC=X", "cn=a+uid=b,dc=x"),
    ("cn=A+uid=b,dc=x", "cn=a+uid=b,dc=x"),
    ("", ""),
    ("   ", ""),
])
def test_normalise(dn: str, normal: str) -> None:
    assert normalise_dn(dn) == normal


def test_normal_form_is_a_fixed_point() -> None:
    for dn in ("CN=Smith\\, John,OU=People", "UID=b+CN=A,DC=X", "cn=J\\C3\\BCrgen,dc=x",
               "cn=\\#hash,dc=x", "cn=a\\3Db,dc=x"):
        once = normalise_dn(dn)
        assert normalise_dn(once) == once


def test_spellings_of_one_dn_agree() -> None:
    spellings = ["cn=Smith\\, John,ou=People,dc=example,dc=org",
                 "CN=smith\\2c john, OU=people, DC=EXAMPLE, DC=ORG",
                 "cn = SMITH\\, JOHN,ou = people,dc = example,dc = org"]
    assert len({normalise_dn(s) for s in spellings}) == 1


def test_different_dns_stay_different() -> None:
    assert normalise_dn("cn=a\\,b,dc=x") != normalise_dn("cn=a,cn=b,dc=x")
    assert normalise_dn("cn=a+uid=b,dc=x") != normalise_dn("cn=a,uid=b,dc=x")
    assert normalise_dn("cn=\\ a,dc=x") != normalise_dn("cn=a,dc=x")


@pytest.mark.parametrize("dn", ["notadn", "cn=a,,dc=x", "=a", "cn", "cn=a=b,dc=x",
                                "cn=a;b,dc=x", "cn=a<b,dc=x"])
def test_invalid_dn(dn: str) -> None:
    with pytest.raises(ValueError, match="invalid DN"):
        normalise_dn(dn)


@pytest.mark.xfail(strict=True, reason="ldap3's parse_dn rejects these valid RFC 4514 DNs "
                   "(escaped trailing space, OID attribute type)", raises=ValueError)
@pytest.mark.parametrize(("dn", "normal"), [
    ("cn=trail\\ ,dc=x", "cn=trail\\ ,dc=x"),
    ("2.5.4.3=Alice,dc=x", "2.5.4.3=alice,dc=x"),
])
def test_valid_dns_ldap3_rejects(dn: str, normal: str) -> None:
    assert normalise_dn(dn) == normal


@pytest.mark.parametrize(("dn", "base", "under"), [
    ("cn=a,ou=g,dc=example,dc=org", "ou=g,dc=example,dc=org", True),
    ("ou=g,dc=example,dc=org", "ou=g,dc=example,dc=org", True),
    ("cn=a,ou=sub,ou=g,dc=example,dc=org", "ou=g,dc=example,dc=org", True),
    ("cn=a,ou=xg,dc=example,dc=org", "ou=g,dc=example,dc=org", False),
    ("ou=a,dc=xexample,dc=org", "dc=example,dc=org", False),
    ("dc=example,dc=org", "ou=g,dc=example,dc=org", False),
    ("cn=a,dc=example,dc=org", "", True),
])
def test_is_under(dn: str, base: str, under: bool) -> None:
    assert is_under(dn, base) is under


@pytest.mark.parametrize(("dn", "scope", "inside"), [
    ("ou=groups,dc=x", "base", True),
    ("cn=a,ou=groups,dc=x", "base", False),
    ("cn=a,ou=groups,dc=x", "one", True),
    ("cn=a,ou=eng,ou=groups,dc=x", "one", False),
    ("cn=a\\,b,ou=groups,dc=x", "one", True),  # an escaped comma is not a separator
    ("cn=a,ou=eng,ou=groups,dc=x", "subtree", True),
    ("ou=groups,dc=x", "subtree", True),
    ("cn=a,ou=people,dc=x", "subtree", False),
])
def test_in_scope_follows_base_one_and_subtree(dn: str, scope: str, inside: bool) -> None:
    assert in_scope(dn, "ou=groups,dc=x", scope) is inside


def test_parent_dn() -> None:
    assert parent_dn("cn=a\\,b,dc=x") == "dc=x"
    assert parent_dn("dc=x") == ""
    assert parent_dn("") is None
