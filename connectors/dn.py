"""DN normalisation: one spelling per DN, so member references match entries reliably."""

from __future__ import annotations

import re
from functools import lru_cache

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import escape_rdn, parse_dn

_HEX_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{2})|\\(.)")


def _unescape(value: str) -> str:
    """Undo RFC 4514 escapes (``\\,`` and ``\\2C``) into the plain value."""
    raw = bytearray()
    pos = 0
    for m in _HEX_ESCAPE.finditer(value):
        raw += value[pos:m.start()].encode("utf-8")
        raw += bytes([int(m.group(1), 16)]) if m.group(1) else m.group(2).encode("utf-8")
        pos = m.end()
    raw += value[pos:].encode("utf-8")
    return raw.decode("utf-8", errors="replace")


# A DN that the full parse would only lower-case: plain ASCII RDNs with nothing to escape.
_PLAIN_VALUE = r"[a-z0-9_.@-]+(?: [a-z0-9_.@-]+)*"
_PLAIN_DN = re.compile(rf"[a-z][a-z0-9-]*={_PLAIN_VALUE}(?:,[a-z][a-z0-9-]*={_PLAIN_VALUE})*")


def normalise_dn(dn: str) -> str:
    """Lower-case attribute types and values, canonical escapes, no stray spaces.

    Naming attributes in practice (cn, ou, dc, uid, o, l) compare case-insensitively, so
    values are folded too. Raises ValueError for a string that is not a DN. Member lists
    repeat plain DNs millions of times: those take a shortcut with the identical result.
    """
    if dn.isascii():
        lower = dn.lower()
        if _PLAIN_DN.fullmatch(lower):
            return lower
    return _parse_normalise(dn)


@lru_cache(maxsize=65536)
def _parse_normalise(dn: str) -> str:
    text = dn.strip()
    if not text:
        return ""
    try:
        parts = parse_dn(text, escape=False, strip=True)
    except LDAPInvalidDnError as exc:
        raise ValueError(f"invalid DN {dn!r}: {exc}") from None
    rdns: list[list[str]] = [[]]
    for attr, value, sep in parts:
        plain = _unescape(value.strip()).casefold()
        rdns[-1].append(f"{attr.strip().lower()}={escape_rdn(plain)}")
        if sep == ",":
            rdns.append([])
    return ",".join("+".join(sorted(avas)) for avas in rdns if avas)


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
