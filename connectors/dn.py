"""Distinguished names (RFC 4514): parse, format, and one normal form to match them by.

Member values, search bases, rule DNs and entries' DNs are matched through their *normal
form* (``normalise_dn``), which two spellings of a DN share when an LDAP server would take
them for one entry (for the usual attribute types). It is a key for matching only: requests
to a server use the DN as the directory gave it. The normal form has

- attribute types in lower case, a standard type written as its OID or another of its names
  (``2.5.4.3``, ``commonName``) as its short name (``cn``);
- values unescaped, lower-cased with ``str.lower`` as servers match the usual types
  (``caseIgnoreMatch``; not ``str.casefold``, which would make ``Straße`` and ``Strasse``
  one value), and escaped again in one way, ``=`` included;
- the AVAs of a multi-valued RDN sorted; no spaces around ``,``, ``+`` and ``=``.

Why a parser of its own: ldap3's ``parse_dn`` rejects valid DNs (an escaped trailing space,
an OID as attribute type, an ``=`` in a value); cryptography's
``Name.from_rfc4514_string`` reads X.509 names (its own upper-case type names only, no space
after a comma); python-ldap has OpenLDAP's parser but needs the C library to build. The
grammar (RFC 4514 section 3) is small enough to read here.

Accepted beyond the strict grammar (section 3 lets a parser recognise other forms), as
people and older tools write DNs: spaces around ``,``, ``+`` and ``=`` (RFC 1779), and a
``#`` that does not start a hex string (``cn=#1 fan``), which is then a plain character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# The version of the normal form. Refs kept from an earlier run (the mirror that an ldap
# delta is laid over) match only refs of the same form: a cursor records it. 2: this parser,
# values lower-cased (no longer case-folded), standard types by one name.
NORMAL_FORM_VERSION = 2


@dataclass(frozen=True, slots=True)
class Ava:
    """One attribute type and value of an RDN: text, or bytes for a ``#hex`` value (its BER
    encoding, RFC 4514 section 2.4)."""

    type: str
    value: str | bytes


Rdn = tuple[Ava, ...]
Dn = tuple[Rdn, ...]  # the leftmost RDN (the entry's own) first


# -- attribute types --------------------------------------------------------------------

# The usual naming attributes (RFC 4519, 4524, 2798, 2307, 2985): each line is the short
# name, then the OID and other names that mean the same type.
_SYNONYMS = [
    ("cn", "2.5.4.3", "commonname"),
    ("sn", "2.5.4.4", "surname"),
    ("serialnumber", "2.5.4.5"),
    ("c", "2.5.4.6", "countryname"),
    ("l", "2.5.4.7", "localityname"),
    ("st", "2.5.4.8", "stateorprovincename"),
    ("street", "2.5.4.9", "streetaddress"),
    ("o", "2.5.4.10", "organizationname"),
    ("ou", "2.5.4.11", "organizationalunitname"),
    ("title", "2.5.4.12"),
    ("description", "2.5.4.13"),
    ("businesscategory", "2.5.4.15"),
    ("postalcode", "2.5.4.17"),
    ("name", "2.5.4.41"),
    ("givenname", "2.5.4.42", "gn"),
    ("initials", "2.5.4.43"),
    ("generationqualifier", "2.5.4.44"),
    ("dnqualifier", "2.5.4.46"),
    ("uid", "0.9.2342.19200300.100.1.1", "userid"),
    ("mail", "0.9.2342.19200300.100.1.3", "rfc822mailbox"),
    ("dc", "0.9.2342.19200300.100.1.25", "domaincomponent"),
    ("uidnumber", "1.3.6.1.1.1.1.0"),
    ("gidnumber", "1.3.6.1.1.1.1.1"),
    ("employeenumber", "2.16.840.1.113730.3.1.3"),
    ("displayname", "2.16.840.1.113730.3.1.241"),
    ("emailaddress", "1.2.840.113549.1.9.1", "email"),
]
_CANONICAL_TYPE = {alias: names[0] for names in _SYNONYMS for alias in names}


def canonical_type(name: str) -> str:
    """An attribute type as the normal form writes it: lower case, a standard one by its
    short name (``2.5.4.3`` and ``commonName`` are ``cn``)."""
    lower = name.lower()
    return _CANONICAL_TYPE.get(lower, lower)


# -- parsing ----------------------------------------------------------------------------

_NUMBER = r"(?:0|[1-9][0-9]*)"
# descr / numericoid (RFC 4512), with the spaces around it that RFC 1779 allowed
_TYPE = re.compile(rf" *([A-Za-z][A-Za-z0-9-]*|{_NUMBER}(?:\.{_NUMBER})+) *=")
_HEX_STRING = re.compile(r"#((?:[0-9A-Fa-f]{2})+) *(?=[,+]|\Z)")
# A run of characters that stand for themselves in a value (RFC 4514 stringchar).
_PLAIN_RUN = re.compile(r'[^\\,+";<>\x00]+')
_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}")
_ESCAPED_CHARACTERS = frozenset('\\"+,;<> #=')  # what may follow a '\' (besides hex)


def _invalid(text: str, pos: int, reason: str) -> ValueError:
    where = f"at character {pos + 1}" if pos < len(text) else "at the end"
    return ValueError(f"invalid DN {text!r}: {reason} ({where})")


def parse_dn(text: str) -> Dn:
    """The RDNs of the RFC 4514 string ``text``; ValueError when it is not a DN.

    Only spaces around the DN are ignored ("" and " " are the root DSE's DN); callers
    holding a line strip it with ``strip_dn``."""
    if not text.strip(" "):
        return ()
    rdns: list[Rdn] = []
    avas: list[Ava] = []
    pos = 0
    while True:
        found = _TYPE.match(text, pos)
        if found is None:
            raise _invalid(text, pos, "expected an attribute type and '='")
        value, pos = _parse_value(text, found.end())
        avas.append(Ava(found.group(1), value))
        if pos == len(text):
            rdns.append(tuple(avas))
            return tuple(rdns)
        if text[pos] == ",":
            rdns.append(tuple(avas))
            avas = []
        pos += 1  # past the ',' or '+'; another AVA must follow


def _parse_value(text: str, pos: int) -> tuple[str | bytes, int]:
    """The value starting at ``pos``, and the position of the ',' or '+' (or the end) after it."""
    while text.startswith(" ", pos):  # unescaped spaces around a value are not part of it
        pos += 1
    start = pos
    if text.startswith("#", pos):
        hexstring = _HEX_STRING.match(text, pos)
        if hexstring is not None:
            return bytes.fromhex(hexstring.group(1)), hexstring.end()
    # Hex escapes give bytes of UTF-8, so the value is gathered as bytes and decoded once.
    raw = bytearray()
    kept = 0  # the length of ``raw`` without its trailing unescaped spaces
    while pos < len(text):
        run = _PLAIN_RUN.match(text, pos)
        if run is not None:
            chunk = run.group()
            raw += chunk.encode("utf-8")
            kept = len(raw) - (len(chunk) - len(chunk.rstrip(" ")))
            pos = run.end()
            continue
        char = text[pos]
        if char in ",+":
            break
        if char != "\\":
            raise _invalid(text, pos, f"{char!r} must be escaped in a value")
        if _HEX_PAIR.match(text, pos + 1):
            raw.append(int(text[pos + 1:pos + 3], 16))
            pos += 3
        elif text[pos + 1:pos + 2] in _ESCAPED_CHARACTERS:
            raw += text[pos + 1].encode("utf-8")
            pos += 2
        else:
            raise _invalid(text, pos, "'\\' must be followed by two hex digits or one of "
                           "\\ \" + , ; < > space # =")
        kept = len(raw)
    try:
        return bytes(raw[:kept]).decode("utf-8"), pos
    except UnicodeDecodeError:
        raise _invalid(text, start, "escaped bytes that are not UTF-8") from None


def strip_dn(text: str) -> str:
    """``text`` without the white space around it, but keeping an escaped trailing space
    (``cn=x\\ ``): for a DN read from a line."""
    stripped = text.strip()
    backslashes = len(stripped) - len(stripped.rstrip("\\"))
    if backslashes % 2 and text.lstrip()[len(stripped):len(stripped) + 1] == " ":
        stripped += " "
    return stripped


# -- formatting -------------------------------------------------------------------------

# What the string form escapes: the RFC 4514 specials, '=' (see normalise_dn), NUL, and a
# space or '#' at the start or a space at the end.
_TO_ESCAPE = re.compile(r'[\\"+,;<>=\x00]|\A[# ]| \Z')


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    return "\\00" if char == "\x00" else "\\" + char


def format_value(value: str | bytes) -> str:
    """A value as RFC 4514 writes it: text escaped, bytes as ``#`` and hex."""
    if isinstance(value, bytes):
        return "#" + value.hex()
    return _TO_ESCAPE.sub(_escape, value)


def format_dn(dn: Dn) -> str:
    """The RFC 4514 string of ``dn``; ``parse_dn`` reads it back as ``dn``."""
    return ",".join("+".join(f"{ava.type}={format_value(ava.value)}" for ava in rdn)
                    for rdn in dn)


def rdn_value(dn: str) -> str:
    """The (first) value of a DN's own RDN as text, ``#hex`` for a binary one; "" for the
    root. ValueError when ``dn`` is not a DN."""
    parsed = parse_dn(dn)
    if not parsed:
        return ""
    value = parsed[0][0].value
    return value if isinstance(value, str) else format_value(value)


# -- the normal form --------------------------------------------------------------------

def _normal_ava(ava: Ava) -> str:
    value = ava.value.lower() if isinstance(ava.value, str) else ava.value
    return f"{canonical_type(ava.type)}={format_value(value)}"


@lru_cache(maxsize=65536)
def normalise_dn_exact(dn: str) -> str:
    """``normalise_dn`` through the parser, without the shortcut: the reference that the
    shortcut is tested against (tests/unit/test_dn.py)."""
    return ",".join("+".join(sorted(map(_normal_ava, rdn))) for rdn in parse_dn(dn))


# The shortcut: a DN that normalise_dn_exact would only lower-case. ASCII RDNs of one AVA,
# with a canonical type and a value with nothing to escape (single inner spaces only).
# The types of nearly every DN first: the regex tries the alternatives in order.
_COMMON_TYPES = ["uid", "cn", "ou", "dc", "o"]
_PLAIN_TYPE = "|".join(_COMMON_TYPES + [n[0] for n in _SYNONYMS if n[0] not in _COMMON_TYPES])
_PLAIN_VALUE = r'[^\x00-\x20\x7f\\"+,;<>=#]+(?: [^\x00-\x20\x7f\\"+,;<>=#]+)*'
_PLAIN_DN = re.compile(rf"(?:{_PLAIN_TYPE})={_PLAIN_VALUE}(?:,(?:{_PLAIN_TYPE})={_PLAIN_VALUE})*")


def normalise_dn(dn: str) -> str:
    """The normal form of ``dn`` (see the module docstring); ValueError when it is no DN.

    Member lists repeat plain DNs millions of times: a DN the parser would only lower-case
    takes a shortcut with the identical result (docs/performance.md)."""
    if dn.isascii():
        lower = dn.lower()
        if _PLAIN_DN.fullmatch(lower):
            return lower
    return normalise_dn_exact(dn)


# -- questions about normalised DNs -----------------------------------------------------
# The normal form escapes '=' in values, so after an escaped ',' nothing reads as
# ",type=value": a suffix test is enough to tell where a DN lies.

def is_under(dn: str, base: str) -> bool:
    """True when normalised ``dn`` equals normalised ``base`` or lies below it."""
    if not base:
        return True
    return dn == base or dn.endswith("," + base)


def parent_dn(ndn: str) -> str | None:
    """The parent of a normalised DN ("" for a one-RDN DN, None for the root)."""
    i = 0
    while i < len(ndn):
        if ndn[i] == "\\":
            i += 2
            continue
        if ndn[i] == ",":
            return ndn[i + 1:]
        i += 1
    return "" if ndn else None


def in_scope(ndn: str, nbase: str, scope: str) -> bool:
    """True when normalised ``ndn`` lies where a search of ``scope`` (base, one, subtree)
    from normalised ``nbase`` looks."""
    if scope == "base":
        return ndn == nbase
    if scope == "one":
        return parent_dn(ndn) == nbase
    return is_under(ndn, nbase)


def dn_ref(value: str) -> str:
    """The ref of a value written in a rule or a DN-valued attribute: its normalised DN, or
    the value as it is when it is not a DN (a group name, an id)."""
    try:
        return normalise_dn(value)
    except ValueError:
        return value
