"""A small RFC 2849 reader: LDIF content records, one at a time.

Supported: an optional ``version: 1`` line, comments, folded lines (a continuation line
starts with one space), ``attr:: base64`` values, blank lines between records and CRLF line
ends. Change records (``changetype:``, ``control:``) and ``attr:< URL`` values are refused.
Every problem is an ``LdifSyntaxError`` (a ``SourceError``) whose message starts ``FILE:LINE:``.
``DuplicateDns`` tells the records that give a DN an earlier record gave.

One record (with the comments before it) may hold at most ``MAX_RECORD_BYTES``; a longer one,
or a longer line, fails there, and the file is read no further: a path that points at an
endless file (``/dev/zero``) or at something that is not LDIF fails instead of filling memory.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from connectors.dn import strip_dn
from syncd.errors import SourceError

# The most bytes one record may take in the file, its line ends and folds included. A group
# of a million members with DNs of 60 characters fits; nothing a directory holds comes near.
MAX_RECORD_BYTES = 64 * 1024 * 1024

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


@dataclass(slots=True)
class Repeat:
    """A DN given by more than one record: as the first repeat spells it, the lines of the
    records (the first ``DuplicateDns.LINES_KEPT``) and how many there are."""

    dn: str
    lines: list[int]
    count: int


class DuplicateDns:
    """Tells the records that repeat an earlier record's DN, keyed by the caller's normal
    form of the DN; ``repeats`` holds each such DN, in the order they were found."""

    LINES_KEPT = 10  # a DN given a million times costs no more than one given ten times

    def __init__(self) -> None:
        self._first: dict[str, int] = {}  # each key -> the line of its first record
        self.repeats: dict[str, Repeat] = {}

    def is_repeat(self, key: str, record: LdifRecord) -> bool:
        """True when an earlier record had ``key``; it is noted in ``repeats``."""
        first = self._first.setdefault(key, record.line)  # one look-up for the usual case
        if first == record.line:
            return False
        repeat = self.repeats.get(key)
        if repeat is None:
            self.repeats[key] = Repeat(record.dn, [first, record.line], 2)
        else:
            repeat.count += 1
            if len(repeat.lines) < self.LINES_KEPT:
                repeat.lines.append(record.line)
        return True


def value_text(value: bytes) -> str:
    """A value as text: UTF-8 where it decodes, else its base64 spelling (binary data)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")


def _logical_lines(lines: Iterable[bytes], file: str,
                   limit: int) -> Iterator[tuple[int, bytes | None]]:
    """Unfold physical lines into (first line number, content); None marks a blank line.

    Fails once the lines of one record (from its first line, comments included, to the
    blank line after it) hold more than ``limit`` bytes.
    """
    start = 0
    parts: list[bytes] = []
    first = 1  # the record's first line
    size = 0   # its bytes so far
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\n").removesuffix(b"\r")
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
        if line.startswith(b" ") and parts:
            size += len(raw)
            if size > limit:
                raise _too_large(file, number, raw, first, limit)
            parts.append(line[1:])
            continue
        if parts:
            yield start, b"".join(parts)
            parts = []
        if not line.strip():
            if len(raw) > limit:  # white space without end
                raise _too_large(file, number, raw, first, limit)
            size, first = 0, number + 1
            yield number, None
            continue
        size += len(raw)
        if size > limit:
            raise _too_large(file, number, raw, first, limit)
        start = number
        parts = [line]
    if parts:
        yield start, b"".join(parts)


def _too_large(file: str, number: int, raw: bytes, first: int, limit: int) -> LdifSyntaxError:
    """The error for a line, or a record from line ``first`` on, beyond ``limit`` bytes."""
    if len(raw.rstrip(b"\r\n")) > limit:
        return LdifSyntaxError(file, number, f"line longer than {_size(limit)}, the most "
                               "one record may hold: is this an LDIF file?")
    return LdifSyntaxError(file, first, f"record larger than {_size(limit)}, the most one "
                           f"record may hold (line {number} passes it)")


def _size(count: int) -> str:
    mib = 1024 * 1024
    return f"{count // mib} MiB" if count % mib == 0 else f"{count} bytes"


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
    for number, line in _logical_lines(lines, file, MAX_RECORD_BYTES):
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
        return strip_dn(value.decode("utf-8"))  # keeps an escaped trailing space
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
        # Lines are read at most one byte beyond the limit, so that an endless line (or a
        # file that is not text) is caught without reading more of it.
        lines = iter(partial(handle.readline, MAX_RECORD_BYTES + 1), b"")
        try:
            yield from parse_ldif(lines, file=str(path), keep=keep)
        except OSError as exc:
            raise SourceError(f"error reading LDIF file {path}: {exc.strerror or exc}") from None
