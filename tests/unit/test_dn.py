"""DNs (connectors/dn.py): the RFC 4514 parser, and one normal form per DN."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.dn import (
    Ava,
    Dn,
    format_dn,
    in_scope,
    is_under,
    normalise_dn,
    normalise_dn_exact,
    parent_dn,
    parse_dn,
    rdn_value,
    strip_dn,
)


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


@pytest.mark.parametrize("dn", ["notadn", "cn=a,,dc=x", "=a", "cn", "cn=a;b,dc=x",
                                "cn=a<b,dc=x", "cn=a>b", 'cn=a"b', "cn=a\x00b", "cn=a,",
                                "cn=a+", "cn=a\\", "cn=a\\q", "cn=a\\4", "cn=\\FF,dc=x",
                                "1.2.=x", "01.2=x", "2.5.4.3.=x", "c n=x", "-cn=x"])
def test_invalid_dn(dn: str) -> None:
    with pytest.raises(ValueError, match="invalid DN"):
        normalise_dn(dn)


def test_the_error_says_what_and_where() -> None:
    with pytest.raises(ValueError, match=r"^invalid DN 'cn=a<b,dc=x': '<' must be escaped "
                       r"in a value \(at character 5\)$"):
        normalise_dn("cn=a<b,dc=x")
    with pytest.raises(ValueError, match=r"expected an attribute type and '=' \(at the end\)"):
        normalise_dn("cn=a,")


@pytest.mark.parametrize(("dn", "normal"), [
    # ldap3's parse_dn rejected these valid RFC 4514 DNs
    ("cn=trail\\ ,dc=x", "cn=trail\\ ,dc=x"),
    ("cn=trail\\20,dc=x", "cn=trail\\ ,dc=x"),
    ("cn=#John Smith\\ ,ou=g,dc=x", "cn=\\#john smith\\ ,ou=g,dc=x"),
    ("cn=\\#John Smith\\ ,ou=g,dc=x", "cn=\\#john smith\\ ,ou=g,dc=x"),
    ("cn=A*x=b,dc=x", "cn=a*x\\=b,dc=x"),
    ("2.5.4.3=Alice,dc=x", "cn=alice,dc=x"),
    ("2.5.4.3=John Smith,0.9.2342.19200300.100.1.25=Example", "cn=john smith,dc=example"),
    # standard types under their other names and OIDs are one type
    ("commonName=A,organizationalUnitName=P,domainComponent=X", "cn=a,ou=p,dc=x"),
    ("userid=ann,0.9.2342.19200300.100.1.1=x", "uid=ann,uid=x"),
    ("GN=Ann+SURNAME=Lee", "givenname=ann+sn=lee"),
    ("1.3.6.1.4.1.1466.0=#04024869,o=Test", "1.3.6.1.4.1.1466.0=#04024869,o=test"),
    ("x-Custom=Value", "x-custom=value"),
    # hex strings stay bytes (their hex in lower case); an escaped # is text
    ("cn=#4A6F,dc=x", "cn=#4a6f,dc=x"),
    ("cn=\\#4A6F,dc=x", "cn=\\#4a6f,dc=x"),
    ("cn=#4A6 ,dc=x", "cn=\\#4a6,dc=x"),
    # lower-cased, not case-folded
    ("cn=Straße,dc=x", "cn=straße,dc=x"),
    ("cn=STRASSE,dc=x", "cn=strasse,dc=x"),
    ("cn=ǅemal,dc=x", "cn=ǆemal,dc=x"),
    # empty values, escaped spaces at both ends, NUL
    ("cn=,dc=x", "cn=,dc=x"),
    ("cn=\\ ,dc=x", "cn=\\ ,dc=x"),
    ("cn= a \\  ,dc=x", "cn=a \\ ,dc=x"),
    ("cn=a\\00b", "cn=a\\00b"),
    ("cn = a + uid = b , dc = x", "cn=a+uid=b,dc=x"),
])
def test_valid_dns(dn: str, normal: str) -> None:
    assert normalise_dn(dn) == normal
    assert normalise_dn(normal) == normal


def test_values_that_differ_by_case_folding_stay_apart() -> None:
    assert normalise_dn("cn=Straße,dc=x") != normalise_dn("cn=Strasse,dc=x")
    assert normalise_dn("cn=STRASSE,dc=x") == normalise_dn("cn=strasse,dc=x")
    assert normalise_dn("cn=#41,dc=x") != normalise_dn("cn=\\#41,dc=x")


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


def test_parse_keeps_types_values_and_rdns_as_written() -> None:
    assert parse_dn("UID=b+2.5.4.3=A\\2C,dc=#0C0178") == (
        (Ava("UID", "b"), Ava("2.5.4.3", "A,")), (Ava("dc", b"\x0c\x01x"),))
    assert parse_dn("") == parse_dn("  ") == ()


def test_strip_dn_keeps_an_escaped_trailing_space() -> None:
    assert strip_dn("  cn=a,dc=x \t\r") == "cn=a,dc=x"
    assert strip_dn("cn=x,dc=a\\ ") == "cn=x,dc=a\\ "
    assert strip_dn("cn=x,dc=a\\   ") == "cn=x,dc=a\\ "
    assert strip_dn("cn=x,dc=a\\\\ ") == "cn=x,dc=a\\\\"  # an escaped '\\', then a space


def test_rdn_value() -> None:
    assert rdn_value("cn=Smith\\, John+uid=js,dc=x") == "Smith, John"
    assert rdn_value("cn=#4869,dc=x") == "#4869"
    assert rdn_value("") == ""


# -- properties -------------------------------------------------------------------------
# DNs are generated as values (types, text or bytes values, multi-valued RDNs), then spelled
# out in every way RFC 4514 allows: each character as itself where it may stand so, with a
# backslash where it may take one, or as the hex escapes of its UTF-8 bytes; hex digits in
# either case; spaces around the separators.

_SPECIAL = set('\\"+,;<>')  # never as themselves in a value (NUL neither)
_BACKSLASHED = set('\\"+,;<> #=')
_TYPES = st.one_of(
    st.sampled_from(["cn", "CN", "uid", "ou", "dc", "o", "commonName", "userid", "2.5.4.3",
                     "0.9.2342.19200300.100.1.1", "1.3.6.1.4.1.1466.0", "member"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,6}", fullmatch=True),
    st.from_regex(r"(0|[1-9][0-9]{0,3})(\.(0|[1-9][0-9]{0,3})){1,4}", fullmatch=True))
_TEXT = st.text(st.one_of(st.sampled_from([*sorted(_BACKSLASHED), "\x00", "ß", "Ä", "é"]),
                          st.characters(codec="utf-8")), max_size=8)
_VALUES = st.one_of(_TEXT, st.binary(min_size=1, max_size=4))
_DNS: st.SearchStrategy[Dn] = st.lists(
    st.lists(st.builds(Ava, _TYPES, _VALUES), min_size=1, max_size=3).map(tuple),
    max_size=4).map(tuple)


def _hex(data: st.DataObject, raw: bytes) -> str:
    text = raw.hex()
    return text if data.draw(st.booleans()) else text.upper()


def _spell_text(data: st.DataObject, value: str) -> str:
    out = []
    for i, char in enumerate(value):
        ways = ["".join(f"\\{_hex(data, bytes([byte]))}" for byte in char.encode())]
        # a space or '#' first, or a space last, would be read otherwise unescaped
        at_edge = (i == 0 and char in " #") or (i == len(value) - 1 and char == " ")
        if char not in _SPECIAL and char != "\x00" and not at_edge:
            ways.append(char)
        if char in _BACKSLASHED:
            ways.append("\\" + char)
        out.append(data.draw(st.sampled_from(ways)))
    return "".join(out)


def _spell(data: st.DataObject, dn: Dn) -> str:
    def space() -> str:
        return data.draw(st.sampled_from(["", " ", "  "]))

    def ava(a: Ava) -> str:
        value = (f"#{_hex(data, a.value)}" if isinstance(a.value, bytes)
                 else _spell_text(data, a.value))
        return f"{space()}{a.type}{space()}={space()}{value}{space()}"

    return ",".join("+".join(ava(a) for a in rdn) for rdn in dn)


@given(_DNS)
def test_parse_reads_back_what_format_writes(dn: Dn) -> None:
    assert parse_dn(format_dn(dn)) == dn


@given(_DNS, st.data())
def test_every_spelling_parses_to_the_same_dn(dn: Dn, data: st.DataObject) -> None:
    spelled = _spell(data, dn)
    assert parse_dn(spelled) == dn
    assert normalise_dn(spelled) == normalise_dn(format_dn(dn))


@given(_DNS)
def test_the_normal_form_is_a_fixed_point(dn: Dn) -> None:
    normal = normalise_dn(format_dn(dn))
    assert normalise_dn(normal) == normal


# Strings that often look plain (the shortcut's case), and often miss it by one character.
_WORDS = st.from_regex(r"[a-zA-Z0-9_.@'()!-]{1,4}( [a-zA-Z0-9_.@'()!-]{1,4}){0,2}",
                       fullmatch=True)
_ODD = st.sampled_from(["=", "#", "+", ",", ";", "\\", '"', "<", ">", " ", "  ", "ß", "é",
                        "\\,", "\\20", "\t", "\x00", "\x7f"])
_PLAINISH = st.lists(st.tuples(
    st.sampled_from(["cn", "CN", "uid", "Ou", "dc", "o", "l", "c", "st", "name", "cN",
                     "commonName", "2.5.4.3", "member"]),
    st.one_of(_WORDS, st.tuples(_WORDS, _ODD, _WORDS).map("".join),
              st.tuples(_ODD, _WORDS).map("".join), st.tuples(_WORDS, _ODD).map("".join)),
), min_size=1, max_size=3).map(lambda rdns: ",".join(f"{t}={v}" for t, v in rdns))


@settings(max_examples=300)
@given(st.one_of(_PLAINISH, _DNS.map(format_dn), st.text(max_size=30)))
def test_the_shortcut_gives_what_the_parser_gives(text: str) -> None:
    def outcome(normalise: object) -> str:
        assert callable(normalise)
        try:
            return str(normalise(text))
        except ValueError:
            return "ValueError"

    assert outcome(normalise_dn) == outcome(normalise_dn_exact)
