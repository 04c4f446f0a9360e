"""What the store accepts as a name or a value: one rule for every driver and every writer.

The admin commands check their input with these functions, the ORM models refuse a bad value
with them (``syncd.store.schema``), and the sync engine can use the ``*_problem`` functions to
skip a source object whose name the store would refuse. A ``*_problem`` function returns
``None`` for a good value, else what is wrong, to follow the shown value ("is empty");
a ``check_*`` function returns a good value and raises ``InvalidValue`` for a bad one.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Callable
from email.utils import parseaddr

from syncd.errors import UsageError

NAME_MAX = 200
DESCRIPTION_MAX = 4000
EMAIL_MAX = 320
ICON_MAX = 1024

# Control characters, and the line and paragraph separators that break a line just as well.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
# What a description may hold although it is a control character.
_DESCRIPTION_ALLOWED = frozenset("\n\t")
# RFC 5322 atext, the characters of a local part's dot-separated atoms.
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_LDH = frozenset(string.ascii_letters + string.digits + "-")
_SHOWN_MAX = 40


class InvalidValue(UsageError, ValueError):
    """A name or value the store refuses: a usage error (exit 2) at the command line, and
    a ``ValueError`` for any other caller (the ORM's validators raise it too)."""


def shown(value: str) -> str:
    """``value`` as a message shows it: quoted with control characters visible, cut when
    long."""
    if len(value) <= _SHOWN_MAX:
        return repr(value)
    return f"{value[:_SHOWN_MAX]!r}… ({len(value)} characters)"


def control_problem(value: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first control character of ``value`` (not in ``allowed``) as a problem, or None."""
    for char in value:
        if char not in allowed and unicodedata.category(char) in _CONTROL_CATEGORIES:
            return f"contains a control character (U+{ord(char):04X})"
    return None


def _length_problem(value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"is longer than {limit} characters"
    return None


def name_problem(value: str) -> str | None:
    """What is wrong with a group, user or organisation name, or None when it is good."""
    if value == "":
        return "is empty"
    if value.strip() == "":
        return "is blank"
    return (_length_problem(value, NAME_MAX)
            or control_problem(value)
            or ("has leading or trailing white space" if value != value.strip() else None))


def description_problem(value: str) -> str | None:
    """What is wrong with a group's description (new lines and tabs are fine), or None."""
    return (_length_problem(value, DESCRIPTION_MAX)
            or control_problem(value, _DESCRIPTION_ALLOWED))


def icon_problem(value: str) -> str | None:
    """What is wrong with a group's icon (a URL or a name), or None."""
    return _length_problem(value, ICON_MAX) or control_problem(value)


def _local_part_problem(local: str) -> str | None:
    if local == "":
        return "has nothing before the '@'"
    if len(local.encode()) > 64:
        return "has a local part (before the '@') longer than 64 bytes"
    if "" in local.split("."):
        return "has a dot at the start or end of the part before the '@', or two in a row"
    for char in local:
        # RFC 6531 lets any non-ASCII character in too.
        if char != "." and char not in _ATEXT and not (ord(char) > 127 and char.isprintable()):
            return f"has {char!r} before the '@'"
    return None


def _domain_problem(domain: str) -> str | None:
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return f"has an invalid domain {domain!r}"
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or len(labels) < 2:
        return f"has a domain {domain!r} that is not a full domain name"
    for label in labels:
        if not 0 < len(label) <= 63 or label[0] == "-" or label[-1] == "-" \
                or not set(label) <= _LDH:
            return f"has an invalid domain {domain!r}"
    if labels[-1].isdigit():
        return f"has a domain {domain!r} that is not a full domain name"
    return None


def email_problem(value: str) -> str | None:
    """What is wrong with an email address (one plain address, no display name), or None."""
    problem = _length_problem(value, EMAIL_MAX) or control_problem(value)
    if problem:
        return problem
    if any(char.isspace() for char in value):
        return "is not an email address (it contains white space)"
    if "@" not in value:
        return "is not an email address (no '@')"
    # The standard library's parser finds the address; anything around it (a display name,
    # angle brackets, a second address) makes the value something other than one address.
    display_name, address = parseaddr(value)
    if display_name or address != value:
        return "is not one plain email address"
    local, _, domain = address.rpartition("@")
    reason = _local_part_problem(local) or _domain_problem(domain)
    return f"is not a valid email address: it {reason}" if reason else None


def _check(what: str, value: str, problem: Callable[[str], str | None]) -> str:
    found = problem(value)
    if found is not None:
        raise InvalidValue(f"{what} {shown(value)} {found}")
    return value


def check_name(what: str, value: str) -> str:
    """``value`` when it is a good name; else InvalidValue, e.g. ``group name 'a\\nb' contains
    a control character (U+000A)``."""
    return _check(what, value, name_problem)


def check_description(what: str, value: str) -> str:
    """``value`` when it is a good description; else InvalidValue."""
    return _check(what, value, description_problem)


def check_icon(what: str, value: str) -> str:
    """``value`` when it is a good icon; else InvalidValue."""
    return _check(what, value, icon_problem)


def check_email(what: str, value: str) -> str:
    """``value`` when it is a good email address; else InvalidValue."""
    return _check(what, value, email_problem)


def storable(value: str) -> bool:
    """False for text no store can hold (PostgreSQL refuses NUL): a look-up of such a value
    finds nothing, and need not ask the database."""
    return "\x00" not in value
