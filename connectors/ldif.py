"""The ``ldif`` connector: a directory read from an LDIF file (demo, tests, offline imports).

The file is read record by record on every pass, never held in memory: ``snapshot()`` returns
two streams that each read the file afresh, so either may be iterated first (or again). The
LDAP presets of CONTRACT section 2 apply as for the ``ldap`` connector; searches (base,
scope, RFC 4515 filter) are evaluated in Python.

An entry without its id attribute (``entryUUID``, ``objectGUID``) gets an id derived from
its normalised DN (a UUID version 5). Such an id changes when the entry is renamed or moved,
so a rename of such a group looks like a deletion and a new group: give the file entryUUIDs
(``slapcat`` and most exports include them) when groups may be renamed.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import structlog
from pydantic import Field, field_validator

from connectors.dn import is_under, normalise_dn
from connectors.ldapcommon import (
    DEFAULT_GROUP_FILTER,
    DEFAULT_USER_FILTER,
    Attributes,
    SchemaName,
    Search,
)
from connectors.ldapfilter import Filter, FilterError, compile_filter
from connectors.ldifparse import LdifRecord, LdifSyntaxError, read_ldif, value_text
from syncd.config.rules import AttributeMatch
from syncd.connector import Connector, ConnectorConfig
from syncd.errors import SourceError
from syncd.source import NAME_REF_PREFIX, Snapshot, SourceGroup, SourceUser

log = structlog.get_logger("syncd.connectors.ldif")

T = TypeVar("T")

# uniqueMember is "DN#'bits'B" (RFC 4517 NameAndOptionalUID); the bits are not part of the DN.
_OPTIONAL_UID = re.compile(r"(?<!\\)#'[01]*'B\s*$")
_UUID_TEXT = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_AD_ACCOUNT_DISABLE = 0x2
# A DN that normalise_dn would only lower-case: plain ASCII RDNs with nothing to escape.
_PLAIN_VALUE = r"[a-z0-9_.@-]+(?: [a-z0-9_.@-]+)*"
_PLAIN_DN = re.compile(rf"[a-z][a-z0-9-]*={_PLAIN_VALUE}(?:,[a-z][a-z0-9-]*={_PLAIN_VALUE})*")


def fast_normalise_dn(dn: str) -> str:
    """``normalise_dn``, with a shortcut for the common plain DN.

    Member lists repeat the same DNs millions of times and the full parse dominates the
    run; the shortcut gives the identical result (the tests compare the two).
    """
    if dn.isascii():
        lower = dn.lower()
        if _PLAIN_DN.fullmatch(lower):
            return lower
    return normalise_dn(dn)


class LdifConfig(ConnectorConfig):
    """An LDIF file; relative paths are relative to the config file."""

    type: Literal["ldif"]
    path: str = Field(description="the LDIF file", examples=["demo/directory.ldif"])
    schema_: SchemaName = Field("rfc4519", alias="schema")
    groups: Search = Field(default_factory=Search)
    users: Search = Field(default_factory=Search)
    attributes: Attributes = Field(default_factory=Attributes)

    @field_validator("groups", "users")
    @classmethod
    def _search(cls, search: Search) -> Search:
        try:
            normalise_dn(search.base)
        except ValueError as exc:
            raise ValueError(f"base: {exc}") from None
        if search.filter is not None:
            try:
                compile_filter(search.filter)
            except FilterError as exc:
                raise ValueError(f"filter: {exc}") from None
        return search


class _Stream(Generic[T]):
    """An iterable that starts a fresh pass over the file each time it is iterated."""

    def __init__(self, make: Callable[[], Iterator[T]]) -> None:
        self._make = make

    def __iter__(self) -> Iterator[T]:
        return self._make()


@dataclass(frozen=True, slots=True)
class _Scope:
    """A search resolved for evaluation: normalised base, scope and compiled filter."""

    base: str
    scope: Literal["subtree", "one", "base"]
    filter: Filter

    def contains(self, ndn: str) -> bool:
        """True when the entry with normalised DN ``ndn`` is in scope (filter aside)."""
        if self.scope == "base":
            return ndn == self.base
        if self.scope == "one":
            return _parent(ndn) == self.base
        return is_under(ndn, self.base)


def _parent(ndn: str) -> str | None:
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


class LdifConnector(Connector):
    """Reads groups and users from an LDIF file."""

    type_name = "ldif"
    config_model: ClassVar[type[ConnectorConfig]] = LdifConfig

    def __init__(self, config: ConnectorConfig, *, base_dir: Path,
                 needed_attributes: frozenset[str] = frozenset()) -> None:
        super().__init__(config, base_dir=base_dir, needed_attributes=needed_attributes)
        assert isinstance(config, LdifConfig)
        self.settings = config
        self.names = config.attributes.resolved(config.schema_)
        self.groups_scope = self._scope(config.groups, DEFAULT_GROUP_FILTER[config.schema_])
        self.users_scope = self._scope(config.users, DEFAULT_USER_FILTER[config.schema_])

    @staticmethod
    def _scope(search: Search, default_filter: str) -> _Scope:
        try:
            return _Scope(base=normalise_dn(search.base), scope=search.scope,
                          filter=compile_filter(search.filter or default_filter))
        except ValueError as exc:  # FilterError too; the config model checks these first
            raise SourceError(f"invalid search: {exc}") from None

    @property
    def path(self) -> Path:
        """The LDIF file, a relative path taken from the config file's directory."""
        path = Path(self.settings.path).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def normalise_ref(self, value: str) -> str:
        """A DN's normalised form; a value that is not a DN (a group name) stays as it is."""
        try:
            return normalise_dn(value)
        except ValueError:
            return value

    def snapshot(self) -> Snapshot:
        """Two streams over the file; either fails if the file changes between passes."""
        stamp = self._stamp()
        return Snapshot(users=_Stream(lambda: self._users(stamp)),
                        groups=_Stream(lambda: self._groups(stamp)))

    def test_connection(self) -> dict[str, Any]:
        """Read the file once for each stream and count what is in scope."""
        started = time.monotonic()
        snap = self.snapshot()
        groups = sum(1 for _ in snap.groups)
        users = sum(1 for _ in snap.users)
        return {"path": str(self.path), "groups": groups, "users": users,
                "elapsed_seconds": round(time.monotonic() - started, 3)}

    # -- passes over the file ----------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise SourceError(f"LDIF file {self.path} does not exist") from None
        except OSError as exc:
            raise SourceError(f"cannot read LDIF file {self.path}: {exc.strerror}") from None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _records(self, stamp: tuple[int, int, int], scope: _Scope,
                 keep: set[str]) -> Iterator[tuple[LdifRecord, str]]:
        """The records in ``scope`` with their normalised DNs, in file order."""
        if self._stamp() != stamp:
            raise SourceError(f"LDIF file {self.path} changed during the run")
        for record in read_ldif(self.path, keep=keep):
            ndn = self._record_dn(record)
            if scope.contains(ndn) and scope.filter.matches(record.attrs):
                yield record, ndn
        if self._stamp() != stamp:
            raise SourceError(f"LDIF file {self.path} changed while it was read")

    def _record_dn(self, record: LdifRecord) -> str:
        try:
            return fast_normalise_dn(record.dn)
        except ValueError:
            raise LdifSyntaxError(str(self.path), record.line,
                                  f"invalid DN {record.dn!r}") from None

    def _entry_id(self, record: LdifRecord) -> str | None:
        """The entry's stable id, or None when it has no id attribute."""
        raw = record.first(self.names["id"])
        if raw is None or not raw.strip():
            return None
        if self.names["id"].lower() == "objectguid" and len(raw) == 16:
            return str(uuid.UUID(bytes_le=raw))  # Microsoft's mixed-endian GUID layout
        text = value_text(raw).strip()
        return text.lower() if _UUID_TEXT.fullmatch(text) else text

    def _id_or_fallback(self, record: LdifRecord, ndn: str, counter: list[int]) -> str:
        found = self._entry_id(record)
        if found is not None:
            return found
        counter[0] += 1
        return str(uuid.uuid5(uuid.NAMESPACE_X500, ndn))

    def _log_fallbacks(self, kind: str, counter: list[int]) -> None:
        if counter[0]:
            log.warning("ldif.ids_from_dn", kind=kind, count=counter[0],
                        attribute=self.names["id"], file=str(self.path),
                        hint="ids derived from DNs: renames cannot be followed")

    # -- groups ------------------------------------------------------------------------

    def _member_attributes(self) -> list[str]:
        member = self.names["member"].lower()
        if self.settings.schema_ == "rfc4519" and member == "member":
            return ["member", "uniquemember"]
        return [member]

    def _groups(self, stamp: tuple[int, int, int]) -> Iterator[SourceGroup]:
        members = self._member_attributes()
        keep = {self.names[k].lower() for k in ("id", "group_name", "description")}
        keep |= set(members) | self.groups_scope.filter.attributes | set(self.needed_attributes)
        fallbacks = [0]
        for record, ndn in self._records(stamp, self.groups_scope, keep):
            yield SourceGroup(
                external_id=self._id_or_fallback(record, ndn, fallbacks),
                ref=ndn,
                dn=record.dn,
                name=self._group_name(record),
                description=self._text(record, self.names["description"]) or "",
                attributes={name: [value_text(v) for v in record.values(name)]
                            for name in sorted(self.needed_attributes) if record.values(name)},
                members=self._members(record, members),
            )
        self._log_fallbacks("group", fallbacks)

    def _group_name(self, record: LdifRecord) -> str:
        name = self._text(record, self.names["group_name"])
        if name:
            return name
        # Fall back on the RDN's value so the group still has a usable name.
        from ldap3.utils.dn import parse_dn

        fallback = parse_dn(record.dn, escape=False, strip=True)[0][1] or record.dn
        log.warning("ldif.group_without_name", dn=record.dn, location=self._at(record),
                    attribute=self.names["group_name"], name=fallback)
        return fallback

    def _members(self, record: LdifRecord, attributes: list[str]) -> list[str]:
        refs: list[str] = []
        seen: set[str] = set()
        for attr in attributes:
            values = record.attrs.get(attr, [])
            for raw in values:
                ref = self._member_ref(record, attr, value_text(raw).strip())
                if ref and ref not in seen:
                    seen.add(ref)
                    refs.append(ref)
        return refs

    def _member_ref(self, record: LdifRecord, attr: str, value: str) -> str | None:
        if not value:
            return None
        if attr == "memberuid":
            return NAME_REF_PREFIX + value
        if attr == "uniquemember":
            value = _OPTIONAL_UID.sub("", value).strip()
        try:
            return fast_normalise_dn(value) or None
        except ValueError:
            log.warning("ldif.invalid_member", group=record.dn, attribute=attr, value=value,
                        location=self._at(record))
            return None

    # -- users -------------------------------------------------------------------------

    def _users(self, stamp: tuple[int, int, int]) -> Iterator[SourceUser]:
        conditions = [c for c in (self.settings.attributes.user_disabled,
                                  self.settings.attributes.user_external) if c is not None]
        keep = {self.names[k].lower() for k in ("id", "user_name", "email", "display_name")}
        keep |= self.users_scope.filter.attributes | {c.name.lower() for c in conditions}
        if self.settings.schema_ == "ad":
            keep.add("useraccountcontrol")
        fallbacks = [0]
        for record, ndn in self._records(stamp, self.users_scope, keep):
            user_name = self._text(record, self.names["user_name"])
            if not user_name:
                log.warning("ldif.user_without_name", dn=record.dn, location=self._at(record),
                            attribute=self.names["user_name"])
                continue
            yield SourceUser(
                external_id=self._id_or_fallback(record, ndn, fallbacks),
                ref=ndn,
                user_name=user_name,
                email=self._text(record, self.names["email"]),
                display_name=self._text(record, self.names["display_name"]),
                disabled=self._disabled(record),
                external=_matches(self.settings.attributes.user_external, record),
            )
        self._log_fallbacks("user", fallbacks)

    def _disabled(self, record: LdifRecord) -> bool:
        condition = self.settings.attributes.user_disabled
        if condition is not None:
            return _matches(condition, record)
        if self.settings.schema_ != "ad":
            return False
        raw = record.first("userAccountControl")
        if raw is None:
            return False
        try:
            return bool(int(raw) & _AD_ACCOUNT_DISABLE)
        except ValueError:
            log.warning("ldif.invalid_user_account_control", dn=record.dn,
                        location=self._at(record), value=value_text(raw))
            return False

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _text(record: LdifRecord, attr: str) -> str | None:
        raw = record.first(attr)
        if raw is None:
            return None
        return value_text(raw).strip() or None

    def _at(self, record: LdifRecord) -> str:
        return f"{self.path}:{record.line}"


def _matches(condition: AttributeMatch | None, record: LdifRecord) -> bool:
    """An attribute condition of the rules language, applied to a user entry.

    Every test given must hold for some value; ``present`` asks whether there is a value.
    """
    if condition is None:
        return False
    values = [value_text(v) for v in record.values(condition.name)]
    if condition.present is not None and bool(values) != condition.present:
        return False
    tests: list[Callable[[str], bool]] = []
    if condition.equals is not None:
        tests.append(lambda v: v == condition.equals)
    if condition.in_ is not None:
        allowed = set(condition.in_)
        tests.append(lambda v: v in allowed)
    if condition.glob is not None:
        pattern = condition.glob
        tests.append(lambda v: fnmatchcase(v, pattern))
    if condition.regex is not None:
        compiled = re.compile(condition.regex)
        tests.append(lambda v: compiled.search(v) is not None)
    return all(any(test(v) for v in values) for test in tests)
