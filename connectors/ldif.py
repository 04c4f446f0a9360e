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

A file cannot say which classes derive from which: ``(objectClass=person)`` also selects an
entry naming only ``inetOrgPerson`` by the standard hierarchy (``connectors/objectclass.py``).
What the passes find worth a warning, without failing, goes into the snapshot's warnings:
a DN given by more than one record (``duplicate_entry``; the first record is the entry, the
others are skipped) and a users or groups filter that selects none of the entries under its
base (``filter_matched_nothing``, with the object classes those entries have).
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
from connectors.ldifparse import (
    DuplicateDns,
    LdifRecord,
    LdifSyntaxError,
    Repeat,
    read_ldif,
    value_text,
)
from syncd.connector import Connector, ConnectorConfig
from syncd.errors import SourceError
from syncd.rules import Warning
from syncd.source import Snapshot, SourceGroup, SourceUser

__all__ = ["LdifConfig", "LdifConnector"]

T = TypeVar("T")

DUPLICATES_SHOWN = 20  # duplicate DNs with a warning each; one more sums up the rest
CLASSES_SHOWN = 10     # object classes a filter_matched_nothing warning names


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


class _Findings:
    """What the passes of one snapshot found worth a warning, by topic; ``warnings`` is the
    snapshot's list, rewritten as each pass ends, so a pass read again says it once."""

    def __init__(self) -> None:
        self.warnings: list[Warning] = []
        self._by_topic: dict[str, list[Warning]] = {}

    def say(self, topic: str, warnings: list[Warning]) -> None:
        """Replace what was said on ``topic``."""
        self._by_topic[topic] = warnings
        self.warnings[:] = [w for said in self._by_topic.values() for w in said]


@dataclass(frozen=True, slots=True)
class _Scope:
    """A search resolved for evaluation: normalised base, scope and compiled filter, and
    how the search was configured (for messages)."""

    kind: Literal["users", "groups"]
    search: Search
    base: str
    scope: Literal["subtree", "one", "base"]
    filter: Filter
    default: bool  # the filter is the preset's default

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
        self.groups_scope = self._scope("groups", config.groups,
                                        DEFAULT_GROUP_FILTER[config.schema_])
        self.users_scope = self._scope("users", config.users,
                                       DEFAULT_USER_FILTER[config.schema_])

    @staticmethod
    def _scope(kind: Literal["users", "groups"], search: Search, default_filter: str) -> _Scope:
        try:
            return _Scope(kind=kind, search=search, base=normalise_dn(search.base),
                          scope=search.scope,
                          filter=compile_filter(search.filter or default_filter),
                          default=search.filter is None)
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
        findings = _Findings()
        return Snapshot(users=_Stream(lambda: self._users(stamp, findings)),
                        groups=_Stream(lambda: self._groups(stamp, findings)),
                        warnings=findings.warnings)

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

    def _records(self, stamp: tuple[int, int, int], scope: _Scope, keep: set[str],
                 findings: _Findings) -> Iterator[tuple[LdifRecord, str]]:
        """The records in ``scope`` with their normalised DNs, in file order; of records
        giving one DN only the first. Warnings go to ``findings`` once the file is read."""
        if self._stamp() != stamp:
            raise SourceError(f"LDIF file {self.path} changed during the run")
        duplicates = DuplicateDns()
        in_scope = matched = 0
        classes: set[bytes] = set()  # of the entries the filter left out, as read
        for record in read_ldif(self.path, keep=keep | {"objectclass"}):
            ndn = self._record_dn(record)
            # the first record of a DN is the entry, as a server loading the file with
            # ldapadd -c would keep it; a later one is skipped wherever it lies
            if duplicates.is_repeat(ndn, record) or not scope.contains(ndn):
                continue
            in_scope += 1
            if scope.filter.matches(record.attrs):
                matched += 1
                yield record, ndn
            elif not matched:  # only a filter that matches nothing names them
                classes.update(record.attrs.get("objectclass", ()))
        if self._stamp() != stamp:
            raise SourceError(f"LDIF file {self.path} changed while it was read")
        findings.say("duplicates", self._duplicate_warnings(list(duplicates.repeats.values())))
        findings.say(scope.kind, [self._nothing_matched(scope, in_scope, classes)]
                     if in_scope and not matched else [])

    def _record_dn(self, record: LdifRecord) -> str:
        try:
            return normalise_dn(record.dn)
        except ValueError as exc:  # "invalid DN '...': what and where in it"
            raise LdifSyntaxError(str(self.path), record.line, str(exc)) from None

    # -- groups ------------------------------------------------------------------------

    def _groups(self, stamp: tuple[int, int, int], findings: _Findings) -> Iterator[SourceGroup]:
        mapper = self.mapper()
        keep = mapper.group_attributes() | self.groups_scope.filter.attributes
        for record, ndn in self._records(stamp, self.groups_scope, keep, findings):
            yield mapper.group(record.dn, ndn, record.attrs, self._locate(record))
        mapper.check_ids("group", self.source_name)
        mapper.log_fallbacks("group", file=str(self.path))

    # -- users -------------------------------------------------------------------------

    def _users(self, stamp: tuple[int, int, int], findings: _Findings) -> Iterator[SourceUser]:
        mapper = self.mapper()
        keep = mapper.user_attributes() | self.users_scope.filter.attributes
        for record, ndn in self._records(stamp, self.users_scope, keep, findings):
            found = mapper.user(record.dn, ndn, record.attrs, self._locate(record))
            if found is not None:
                yield found
        mapper.check_ids("user", self.source_name)
        mapper.log_fallbacks("user", file=str(self.path))

    # -- warnings ----------------------------------------------------------------------

    def _duplicate_warnings(self, repeats: list[Repeat]) -> list[Warning]:
        """One ``duplicate_entry`` per DN given more than once, the rest summed up."""
        out = [Warning("duplicate_entry", f"{self.source_name}: {self.path}: the DN "
                       f"{r.dn!r} is given at lines {_lines(r)}; the entry at line "
                       f"{r.lines[0]} is used, the others are ignored")
               for r in repeats[:DUPLICATES_SHOWN]]
        rest = repeats[DUPLICATES_SHOWN:]
        if rest:
            out.append(Warning("duplicate_entry", f"{self.source_name}: {self.path}: "
                               f"{len(rest)} more DNs are each given by more than one record "
                               f"(the next at lines {_lines(rest[0])}); the first entry of "
                               "each is used"))
        return out

    def _nothing_matched(self, scope: _Scope, in_scope: int, classes: set[bytes]) -> Warning:
        """The ``filter_matched_nothing`` warning: the filter, and the classes seen."""
        default = f" (the {self.settings.schema_} default)" if scope.default else ""
        where = f" under base {scope.search.base!r}" if scope.search.base else ""
        if scope.scope != "subtree":
            where += f" (scope {scope.scope})"
        distinct = {text.casefold(): text for text in sorted(map(value_text, classes))}
        names = sorted(distinct.values(), key=str.casefold)
        seen = ", ".join(names[:CLASSES_SHOWN])
        if len(names) > CLASSES_SHOWN:
            seen += f" and {len(names) - CLASSES_SHOWN} more"
        missed = (f"did not match the one entry{where}" if in_scope == 1
                  else f"matched none of the {in_scope} entries{where}")
        return Warning("filter_matched_nothing", (
            f"{self.source_name}: the {scope.kind} filter{default} {scope.filter.text!r} "
            f"{missed} in {self.path}; "
            + (f"object classes there: {seen}" if seen else "no objectClass there")))

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


def _lines(repeat: Repeat) -> str:
    """``3 and 9``, ``3, 9 and 12``, or ``3, 9, ... (40 records)`` beyond the lines kept."""
    shown = [str(n) for n in repeat.lines]
    if repeat.count > len(shown):
        return f"{', '.join(shown)}, ... ({repeat.count} records)"
    return f"{', '.join(shown[:-1])} and {shown[-1]}"
