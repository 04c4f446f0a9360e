"""The ``ldif`` connector: a directory read from an LDIF file (demo, tests, offline imports).

The file is read record by record on every pass, never held in memory: ``snapshot()`` returns
two streams that each read the file afresh, so either may be iterated first (or again). The
LDAP presets of CONTRACT section 2 apply as for the ``ldap`` connector; searches (base,
scope, RFC 4515 filter) are evaluated in Python.

An entry without its id attribute (``entryUUID``, ``objectGUID``) gets an id derived from
its normalised DN (a UUID version 5), when no group (or no user) in scope has one. Such an
id changes when the entry is renamed or moved, so a rename of such a group looks like a
deletion and a new group: give the file entryUUIDs (``slapcat`` and most exports include
them) when groups may be renamed. A file where some groups (or users) have an id and some
not is taken for an export cut short or edited, and fails the run (``Mapper.check_ids``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import Field, field_validator

from connectors.dn import dn_ref, in_scope, normalise_dn
from connectors.ldapcommon import (
    DEFAULT_GROUP_FILTER,
    DEFAULT_USER_FILTER,
    Attributes,
    SchemaName,
    Search,
)
from connectors.ldapfilter import Filter, FilterError, compile_filter
from connectors.ldapmap import Mapper
from connectors.ldifparse import LdifRecord, LdifSyntaxError, read_ldif
from syncd.connector import Connector, ConnectorConfig
from syncd.errors import SourceError
from syncd.source import Snapshot, SourceGroup, SourceUser

__all__ = ["LdifConfig", "LdifConnector"]

T = TypeVar("T")


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
        return in_scope(ndn, self.base, self.scope)


class LdifConnector(Connector):
    """Reads groups and users from an LDIF file."""

    type_name = "ldif"
    config_model: ClassVar[type[ConnectorConfig]] = LdifConfig

    def __init__(self, config: ConnectorConfig, *, base_dir: Path,
                 needed_attributes: frozenset[str] = frozenset()) -> None:
        super().__init__(config, base_dir=base_dir, needed_attributes=needed_attributes)
        assert isinstance(config, LdifConfig)
        self.settings = config
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
        return dn_ref(value)

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
            return normalise_dn(record.dn)
        except ValueError as exc:  # "invalid DN '...': what and where in it"
            raise LdifSyntaxError(str(self.path), record.line, str(exc)) from None

    # -- groups ------------------------------------------------------------------------

    def _groups(self, stamp: tuple[int, int, int]) -> Iterator[SourceGroup]:
        mapper = self.mapper()
        keep = mapper.group_attributes() | self.groups_scope.filter.attributes
        for record, ndn in self._records(stamp, self.groups_scope, keep):
            yield mapper.group(record.dn, ndn, record.attrs, self._locate(record))
        mapper.check_ids("group", self.source_name)
        mapper.log_fallbacks("group", file=str(self.path))

    # -- users -------------------------------------------------------------------------

    def _users(self, stamp: tuple[int, int, int]) -> Iterator[SourceUser]:
        mapper = self.mapper()
        keep = mapper.user_attributes() | self.users_scope.filter.attributes
        for record, ndn in self._records(stamp, self.users_scope, keep):
            found = mapper.user(record.dn, ndn, record.attrs, self._locate(record))
            if found is not None:
                yield found
        mapper.check_ids("user", self.source_name)
        mapper.log_fallbacks("user", file=str(self.path))

    # -- helpers -----------------------------------------------------------------------

    @property
    def source_name(self) -> str:
        """How errors name this connector."""
        return f"ldif connector {self.settings.name!r}"

    def mapper(self) -> Mapper:
        """A fresh mapper (it counts fallback ids per pass)."""
        return Mapper(self.settings.schema_, self.settings.attributes, self.needed_attributes,
                      event="ldif")

    def _locate(self, record: LdifRecord) -> Callable[[], str]:
        return lambda: f"{self.path}:{record.line}"
