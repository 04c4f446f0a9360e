"""Validated scalar types shared by the config models (checked at load time)."""

from __future__ import annotations

import math
import re
import string
from fractions import Fraction
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr

from syncd.durations import cron_trigger, parse_duration


def _check_duration(v: str) -> str:
    parse_duration(v)
    return v


def _check_cron(v: str) -> str:
    cron_trigger(v)
    return v


def _check_regex(v: str) -> str:
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
    return v


def check_ldap_filter(v: str) -> str:
    """Raise ValueError unless ``v`` is a well-formed RFC 4515 filter."""
    from ldap3.core.exceptions import LDAPInvalidFilterError
    from ldap3.operation.search import parse_filter

    text = v.strip()
    if text.count("(") != text.count(")"):
        raise ValueError(f"invalid LDAP filter {v!r}: unbalanced parentheses")
    if not (text.startswith("(") and text.endswith(")")):
        raise ValueError(f"invalid LDAP filter {v!r}: must be enclosed in parentheses")
    try:
        parse_filter(text, None, auto_escape=False, auto_encode=False, validator=None,
                     check_names=False)
    except (LDAPInvalidFilterError, ValueError, IndexError) as exc:
        raise ValueError(f"invalid LDAP filter {v!r}: {exc}") from None
    return text


TEMPLATE_FIELDS = {"name", "description", "dn", "id"}


def _check_template(v: str) -> str:
    try:
        parsed = list(string.Formatter().parse(v))
    except ValueError as exc:
        raise ValueError(f"invalid template {v!r}: {exc}") from None
    for _, fname, spec, conversion in parsed:
        if fname is None:
            continue
        if fname not in TEMPLATE_FIELDS and not re.fullmatch(r"attr\[[^\[\].{}]+\]", fname):
            raise ValueError(
                f"unknown template field {{{fname}}} in {v!r}: use "
                "{name}, {description}, {dn}, {id} or {attr[NAME]}"
            )
        if spec or conversion:
            raise ValueError(f"template field {{{fname}}} in {v!r} takes no format or "
                             "conversion")
    return v


def _check_percent_or_count(v: int | str) -> int | str:
    if isinstance(v, int):
        if v < 0:
            raise ValueError("must be zero or more")
        return v
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", v)
    if not m or float(m.group(1)) > 100:
        raise ValueError(f"invalid limit {v!r}: expected a count (10) or a share (\"5%\")")
    return v


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    Field(pattern=r"^\s*\d+\s*[smhd]\s*$", examples=["30s", "5m", "1h", "1d"],
          description="an integer and a unit (s, m, h, d), from 1s to 366d"),
]
Cron = Annotated[
    str, AfterValidator(_check_cron),
    Field(description="5-field cron expression", examples=["0 3 * * *"]),
]
Regex = Annotated[str, AfterValidator(_check_regex)]
LdapFilter = Annotated[str, AfterValidator(check_ldap_filter),
                       Field(examples=["(objectClass=groupOfNames)"])]
Template = Annotated[str, AfterValidator(_check_template), Field(examples=["eng-{name}"])]
Limit = Annotated[int | str, AfterValidator(_check_percent_or_count),
                  Field(examples=[10, "5%"])]
Secret = SecretStr


def _share(limit: str) -> Fraction:
    """``"N%"`` as an exact fraction (``"12.5%"`` is 1/8)."""
    return Fraction(limit.strip().rstrip("%").strip()) / 100


def limit_off(limit: int | str | None) -> bool:
    """Whether a limit lets everything through: none, or ``"100%"``."""
    return limit is None or (isinstance(limit, str) and _share(limit) >= 1)


def resolve_limit(limit: int | str | None, total: int) -> int | None:
    """A count stays a count; ``"N%"`` is that share of ``total``, rounded down; ``"100%"``
    (or none) is no limit at all."""
    if limit_off(limit):
        return None
    if isinstance(limit, int):
        return limit
    assert limit is not None
    return math.floor(_share(limit) * total)


def resolve_floor(share: int | str, total: int) -> int:
    """The fewest of ``total`` a share lets remain: ``"50%"`` of 13 is 7, since 6 is fewer
    than half (rounded up, exactly: never less than the share); a count stays a count."""
    if isinstance(share, int):
        return share
    return math.ceil(_share(share) * total)
