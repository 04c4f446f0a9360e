"""RFC 4515 search filters evaluated in Python, against entries read from a file.

An entry is a mapping of lower-case attribute names to their values (bytes or str).
Matching follows what directory servers do for the usual string attributes: values compare
case-insensitively (``objectClass`` too), ``~=`` is equality, and ``>=``/``<=`` compare
numbers as numbers. An assertion value that is not UTF-8 after unescaping (``\\af\\03``,
e.g. an objectGUID) is compared byte for byte. Of the extensible matches, the case rules
and Active Directory's bitwise rules are understood; the others are refused when compiled.

``(objectClass=X)`` (and ``~=``) matches an entry of class X or of any class derived from it,
as a server does, with the standard hierarchy of ``connectors/objectclass.py``; a class that
table does not know matches literally.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.objectclass import TOP_NAMES, satisfying
from syncd.config.types import check_ldap_filter

Value = bytes | str
Entry = Mapping[str, Sequence[Value]]
Test = Callable[[Entry], bool]

# ldap3's node tags (ldap3.operation.search): fixed by the library, spelt out for clarity.
_ROOT, _AND, _OR, _NOT = 0, 1, 2, 3
_APPROX, _GE, _LE, _EXTENSIBLE, _PRESENT, _SUBSTRING, _EQUAL = 4, 5, 6, 7, 8, 9, 10

_INTEGER = re.compile(r"[+-]?[0-9]+")
_HEX = b"0123456789abcdefABCDEF"

_CASE_IGNORE_RULES = {
    "caseignorematch", "2.5.13.2", "caseignoreia5match", "1.3.6.1.4.1.1466.109.114.2",
    "distinguishednamematch", "2.5.13.1", "integermatch", "2.5.13.14",
    "booleanmatch", "2.5.13.13",
}
_EXACT_RULES = {
    "caseexactmatch", "2.5.13.5", "caseexactia5match", "1.3.6.1.4.1.1466.109.114.1",
    "octetstringmatch", "2.5.13.17",
}
_AD_BIT_AND = "1.2.840.113556.1.4.803"
_AD_BIT_OR = "1.2.840.113556.1.4.804"


class FilterError(ValueError):
    """A filter that is malformed or uses something this evaluator cannot do."""


@dataclass(frozen=True, slots=True)
class Filter:
    """A compiled filter: ``matches(entry)``, and the attribute names it reads."""

    text: str
    attributes: frozenset[str]
    _test: Test

    def matches(self, entry: Entry) -> bool:
        """True when ``entry`` (lower-case attribute names to values) passes the filter."""
        return self._test(entry)


def compile_filter(text: str) -> Filter:
    """Parse ``text`` (RFC 4515) into a ``Filter``; raise ``FilterError`` if it is unusable."""
    from ldap3.core.exceptions import LDAPInvalidFilterError
    from ldap3.operation.search import parse_filter

    try:
        clean = check_ldap_filter(text)
        root = parse_filter(clean, None, auto_escape=False, auto_encode=False, validator=None,
                            check_names=False)
    except (LDAPInvalidFilterError, ValueError, IndexError) as exc:
        raise FilterError(str(exc) if isinstance(exc, ValueError)
                          else f"invalid LDAP filter {text!r}: {exc}") from None
    names: set[str] = set()
    test = _compile(root, names, text)
    return Filter(text=clean, attributes=frozenset(names), _test=test)


def unescape(value: bytes) -> bytes:
    """Undo RFC 4515 escapes: ``\\2a`` is ``*``, ``\\5c`` is a backslash."""
    if b"\\" not in value:
        return value
    out = bytearray()
    pos = 0
    while True:
        hit = value.find(b"\\", pos)
        if hit < 0:
            out += value[pos:]
            return bytes(out)
        pair = value[hit + 1:hit + 3]
        if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            raise FilterError(f"invalid escape in filter value {value!r}: "
                              "a backslash must be followed by two hex digits")
        out += value[pos:hit]
        out.append(int(pair, 16))
        pos = hit + 3


def fold(value: Value) -> Value:
    """The comparison form of a value: case-folded text, or the bytes if not UTF-8."""
    if isinstance(value, str):
        return value.casefold()
    try:
        return value.decode("utf-8").casefold()
    except UnicodeDecodeError:
        return value


def _raw(value: Value) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _compile(node: Any, names: set[str], text: str) -> Test:
    tag = node.tag
    if tag == _ROOT:
        if len(node.elements) != 1:
            raise FilterError(f"invalid LDAP filter {text!r}")
        return _compile(node.elements[0], names, text)
    if tag in (_AND, _OR, _NOT):
        parts = [_compile(child, names, text) for child in node.elements]
        if tag == _NOT:
            (inner,) = parts
            return lambda entry: not inner(entry)
        if tag == _AND:
            return lambda entry: all(part(entry) for part in parts)
        return lambda entry: any(part(entry) for part in parts)
    assertion = node.assertion
    attr = assertion.get("attr")
    if not attr:
        raise FilterError(f"filter {text!r}: an extensible match needs an attribute name")
    attr = str(attr).lower()
    names.add(attr)
    if tag == _PRESENT:
        return lambda entry: bool(entry.get(attr))
    if tag in (_EQUAL, _APPROX) and attr == "objectclass":
        return _object_class(unescape(assertion["value"]))
    if tag in (_EQUAL, _APPROX):
        return _equality(attr, unescape(assertion["value"]))
    if tag in (_GE, _LE):
        return _ordering(attr, unescape(assertion["value"]), tag == _GE)
    if tag == _SUBSTRING:
        return _substring(attr, assertion)
    if tag == _EXTENSIBLE:
        return _extensible(attr, assertion, text)
    raise FilterError(f"filter {text!r}: unsupported filter item")  # pragma: no cover


def _equality(attr: str, raw: bytes) -> Test:
    wanted = fold(raw)

    def compare(value: Value) -> bool:
        have = fold(value)
        if isinstance(have, str) and isinstance(wanted, str):
            return have == wanted
        return _raw(value) == raw  # binary on either side: byte for byte

    return lambda entry: any(compare(v) for v in entry.get(attr, ()))


def _object_class(raw: bytes) -> Test:
    """``(objectClass=X)``: the entry names X or a class derived from X (the set of those
    names is made once here, so that each entry costs a set look-up per class it names)."""
    wanted = fold(raw)
    if not isinstance(wanted, str):
        return _equality("objectclass", raw)
    if wanted in TOP_NAMES:  # every class derives from top, known to the table or not
        return lambda entry: bool(entry.get("objectclass"))
    accepted = satisfying(wanted)
    return lambda entry: any(fold(v) in accepted for v in entry.get("objectclass", ()))


def _exact(attr: str, raw: bytes) -> Test:
    return lambda entry: any(_raw(v) == raw for v in entry.get(attr, ()))


def _ordering(attr: str, raw: bytes, greater: bool) -> Test:
    wanted = fold(raw)

    def compare(value: Value) -> bool:
        have = fold(value)
        if isinstance(have, str) and isinstance(wanted, str):
            if _INTEGER.fullmatch(have) and _INTEGER.fullmatch(wanted):
                return int(have) >= int(wanted) if greater else int(have) <= int(wanted)
            return have >= wanted if greater else have <= wanted
        if isinstance(have, bytes) and isinstance(wanted, bytes):
            return have >= wanted if greater else have <= wanted
        return False

    return lambda entry: any(compare(v) for v in entry.get(attr, ()))


def _substring(attr: str, assertion: dict[str, Any]) -> Test:
    initial = None if assertion.get("initial") is None else unescape(assertion["initial"])
    final = None if assertion.get("final") is None else unescape(assertion["final"])
    middle = [unescape(p) for p in assertion.get("any", ())]
    given = [p for p in (initial, *middle, final) if p is not None]
    if not given:  # "(cn=**)": no component, so any value will do
        return lambda entry: bool(entry.get(attr))
    folded = [fold(p) for p in given]
    text: tuple[Any, list[Any], Any] | None = None
    if all(isinstance(p, str) for p in folded):
        text = (None if initial is None else fold(initial), [fold(p) for p in middle],
                None if final is None else fold(final))

    def compare(value: Value) -> bool:
        have = fold(value)
        if text is not None and isinstance(have, str):
            return _substring_match(have, *text)
        return _substring_match(_raw(value), initial, middle, final)  # byte for byte

    return lambda entry: any(compare(v) for v in entry.get(attr, ()))


def _substring_match(have: Any, initial: Any, middle: list[Any], final: Any) -> bool:
    """Initial, then each ``any`` part in order without overlap, then final."""
    pos, end = 0, len(have)
    if initial is not None:
        if not have.startswith(initial):
            return False
        pos = len(initial)
    if final is not None:
        if end - pos < len(final) or not have.endswith(final):
            return False
        end -= len(final)
    for part in middle:
        hit = have.find(part, pos, end)
        if hit < 0:
            return False
        pos = hit + len(part)
    return True


def _extensible(attr: str, assertion: dict[str, Any], text: str) -> Test:
    if assertion.get("dnAttributes"):
        raise FilterError(f"filter {text!r}: ':dn:' matches are not supported")
    rule = str(assertion.get("matchingRule") or "").lower()
    raw = unescape(assertion["value"])
    if not rule or rule in _CASE_IGNORE_RULES:
        return _equality(attr, raw)
    if rule in _EXACT_RULES:
        return _exact(attr, raw)
    if rule in (_AD_BIT_AND, _AD_BIT_OR):
        return _bitwise(attr, raw, every=rule == _AD_BIT_AND, text=text)
    raise FilterError(f"filter {text!r}: matching rule {rule!r} is not supported here")


def _bitwise(attr: str, raw: bytes, *, every: bool, text: str) -> Test:
    try:
        mask = int(raw)
    except ValueError:
        raise FilterError(f"filter {text!r}: a bitwise match needs an integer") from None

    def compare(value: Value) -> bool:
        try:
            bits = int(_raw(value))
        except ValueError:
            return False
        return (bits & mask) == mask if every else (bits & mask) != 0

    return lambda entry: any(compare(v) for v in entry.get(attr, ()))
