"""A small RFC 2849 reader: LDIF content records, one at a time.

Supported: an optional ``version: 1`` line, comments, folded lines (a continuation line
starts with one space), ``attr:: base64`` values, blank lines between records and CRLF line
ends. Change records (``changetype:``, ``control:``) and ``attr:< URL`` values are refused.
Every problem is an ``LdifSyntaxError`` (a ``SourceError``) whose message starts ``FILE:LINE:``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from syncd.errors import SourceError

# RFC 4512 attribute descriptions: a name or an OID, then options (``cn;lang-de``).
_ATTR_DESC = re.compile(rb"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)(?:;[A-Za-z0-9-]+)*")


class LdifSyntaxError(SourceError):
    """A malformed LDIF file; ``file`` and ``line`` say where."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file = file
        self.line = line
        super().__init__(f"{file}:{line}: {message}")


@dataclass(slots=True)
class LdifRecord:
    """One content record: its DN as written, the line it starts on, and its attributes.

    ``attrs`` maps lower-case attribute descriptions to their raw values in file order.
    """

    dn: str
    line: int
    attrs: dict[str, list[bytes]] = field(default_factory=dict)

    def values(self, name: str) -> list[bytes]:
        """The values of attribute ``name`` (case-insensitive); empty when absent."""
        return self.attrs.get(name.lower(), [])

    def first(self, name: str) -> bytes | None:
        """The first value of attribute ``name``, or None when absent."""
        values = self.attrs.get(name.lower())
        return values[0] if values else None


def value_text(value: bytes) -> str:
    """A value as text: UTF-8 where it decodes, else its base64 spelling (binary data)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")


def _logical_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """Unfold physical lines into (first line number, content); None marks a blank line."""
    start = 0
    parts: list[bytes] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\n").removesuffix(b"\r")
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
        if line.startswith(b" ") and parts:
            parts.append(line[1:])
            continue
        if parts:
            yield start, b"".join(parts)
            parts = []
        if not line.strip():
            yield number, None
            continue
        start = number
        parts = [line]
    if parts:
        yield start, b"".join(parts)


def _split(file: str, number: int, line: bytes) -> tuple[str, bytes]:
    """An ``attr: value`` line as (lower-case attribute description, raw value)."""
    if line.startswith(b" "):
        raise LdifSyntaxError(file, number, "continuation line with no line before it")
    name, colon, rest = line.partition(b":")
    if not colon:
        raise LdifSyntaxError(file, number, f"expected 'attribute: value', got {_show(line)}")
    if not _ATTR_DESC.fullmatch(name):
        raise LdifSyntaxError(file, number, f"invalid attribute name {_show(name)}")
    attr = name.decode("ascii").lower()
    if rest.startswith(b":"):
        try:
            return attr, base64.b64decode(rest[1:].strip(b" "), validate=True)
        except (binascii.Error, ValueError):
            raise LdifSyntaxError(
                file, number, f"invalid base64 value of {attr!r}") from None
    if rest.startswith(b"<"):
        raise LdifSyntaxError(
            file, number, f"{attr!r} refers to an external value (':<' URL); "
            "URL values are not supported, put the value in the file")
    return attr, rest.lstrip(b" ")


def _show(data: bytes, limit: int = 60) -> str:
    text = data.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_ldif(lines: Iterable[bytes], *, file: str = "<ldif>",
               keep: Collection[str] | None = None) -> Iterator[LdifRecord]:
    """Yield the content records of LDIF ``lines`` (bytes, with or without line ends).

    ``keep`` (lower-case attribute names) limits which attributes are stored, so that large
    values nobody needs (photos, certificates) are dropped as soon as they are read; they
    are still checked for syntax.
    """
    record: LdifRecord | None = None
    seen_record = False
    for number, line in _logical_lines(lines):
        if line is None:
            if record is not None:
                yield record
                record = None
            continue
        if line.startswith(b"#"):
            continue
        attr, value = _split(file, number, line)
        if record is None:
            if attr == "version" and not seen_record:
                if value.strip() != b"1":
                    raise LdifSyntaxError(file, number, f"unsupported LDIF version {_show(value)}")
                seen_record = True
                continue
            seen_record = True
            if attr != "dn":
                raise LdifSyntaxError(
                    file, number, f"a record must start with 'dn:', got {attr!r}")
            record = LdifRecord(dn=_dn_text(file, number, value), line=number)
            continue
        if attr in ("changetype", "control"):
            raise LdifSyntaxError(
                file, number, f"change records ({attr}:) are not supported; "
                "give the directory's content records only")
        if attr == "dn":
            raise LdifSyntaxError(
                file, number, "a second 'dn:' in one record; separate records with a blank line")
        if keep is None or attr in keep:
            record.attrs.setdefault(attr, []).append(value)
    if record is not None:
        yield record


def _dn_text(file: str, number: int, value: bytes) -> str:
    try:
        return value.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise LdifSyntaxError(file, number, "the DN is not valid UTF-8") from None


def read_ldif(path: Path, *, keep: Collection[str] | None = None) -> Iterator[LdifRecord]:
    """Yield the content records of the LDIF file at ``path``, reading it as it goes."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise SourceError(f"LDIF file {path} does not exist") from None
    except OSError as exc:
        raise SourceError(f"cannot read LDIF file {path}: {exc.strerror or exc}") from None
    with handle:
        try:
            yield from parse_ldif(handle, file=str(path), keep=keep)
        except OSError as exc:
            raise SourceError(f"error reading LDIF file {path}: {exc.strerror or exc}") from None
