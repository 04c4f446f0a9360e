"""The ``ldap`` connector: OpenLDAP, 389 DS and Active Directory through ldap3.

A run reads groups and users with paged searches (only the attributes the preset, the
overrides and the rules use, as raw values), maps them with ``connectors.ldapmap`` (the same
mapping as the ``ldif`` connector) and hands the engine a complete snapshot, or a delta laid
over the mirror of the last one. Any failure (server down, bind refused, a connection lost
between pages, a size or time limit, a referral) is a ``SourceError``: the run changes
nothing. Transient network errors retry the whole pull, with backoff, up to ``retries``.

Search continuation references (a referral object in scope; Active Directory's other
partitions below a domain root) are not followed: the entries behind them are held by
another partition or server. They are counted and logged once per run
(``ldap.continuation_references``), or fail the run with ``referrals: fail``. A search
whose base is itself held elsewhere (a referral as its result) always fails. Aliases are
not dereferenced unless ``aliases`` says so.

Member DNs outside the configured bases are read one by one (a base-scope read with the
user filter); a member DN that does not exist is a warning. With Active Directory, members
whose *primary group* is a group (``primaryGroupID``, "Domain Users" for most) are not in
its ``member`` attribute and so are not members here; ``in_chain: true`` asks the server
for the flattened membership of each group instead (LDAP_MATCHING_RULE_IN_CHAIN, one
search per group, also without primary-group members).

Deltas: Active Directory reads entries with ``uSNChanged`` above the highestCommittedUSN
stored in the cursor, from the same DC (its dnsHostName and invocationId are in the cursor;
another DC means a full run). Other servers read entries whose ``modifyTimestamp`` is at or
after the start of the last run less ``delta_overlap``. Deletions (and entries leaving the
scope) are found by an id-only scan of both bases against the ids kept in the cursor.

Ids: the preset's id attribute (or its override); an entry without one gets an id from its
DN only when no other entry of its kind (group or user) has one. Where some have one and
some not, the server answered in part for this purpose, and the run fails
(``Mapper.check_ids``): in a full run over the entries read, in a delta over the changed
entries and the id-only scans together.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import gc
import hashlib
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import structlog
from ldap3.utils.conv import escape_filter_chars
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.dn import NORMAL_FORM_VERSION, dn_ref, in_scope, normalise_dn
from connectors.ldapcommon import (
    DEFAULT_GROUP_FILTER,
    DEFAULT_USER_FILTER,
    Attributes,
    SchemaName,
    Search,
)
from connectors.ldapmap import Attrs, Mapper, fast_normalise_dn, id_text, value_text
from connectors.ldaptransport import (
    Aliases,
    Endpoint,
    Ldap3Transport,
    References,
    Referrals,
    Transport,
    TransportError,
)
from syncd.config.base import Model
from syncd.config.types import Duration
from syncd.connector import Connector, ConnectorConfig
from syncd.durations import parse_duration
from syncd.errors import SourceError
from syncd.source import (
    NAME_REF_PREFIX,
    Delta,
    Removals,
    Snapshot,
    SourceGroup,
    SourceUser,
)

log = structlog.get_logger("syncd.connectors.ldap")

T = TypeVar("T")
CURSOR_VERSION = 1
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"


class TlsConfig(Model):
    """Certificate verification (on by default) and an optional client certificate."""

    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = Field(None, description="client certificate (SASL EXTERNAL)")
    key_file: str | None = None


class Timeouts(Model):
    """Timeouts on connect and on each operation."""

    connect: Duration = "10s"
    operation: Duration = "60s"


class LdapConfig(ConnectorConfig):
    """An LDAP server: OpenLDAP, 389-ds or Active Directory."""

    type: Literal["ldap"]
    url: str = Field(pattern=r"^ldaps?://", examples=["ldaps://ldap.example.org"])
    start_tls: bool = False
    tls: TlsConfig = Field(default_factory=TlsConfig)
    bind_dn: str | None = None
    password: SecretStr | None = None
    sasl: Literal["external"] | None = Field(None, description="SASL mechanism instead of a "
                                             "simple bind")
    allow_insecure: bool = Field(False, description="allow a clear-text simple bind to a "
                                 "non-loopback host")
    schema_: SchemaName = Field("rfc4519", alias="schema")
    page_size: int = Field(500, ge=1, le=100000)
    groups: Search
    users: Search
    attributes: Attributes = Field(default_factory=Attributes)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retries: int = Field(3, ge=0, le=10, description="retries on transient errors in a run")
    in_chain: bool = Field(False, description="AD: resolve nesting on the server "
                           "(LDAP_MATCHING_RULE_IN_CHAIN)")
    delta_overlap: Duration = Field("5m", description="generic LDAP deltas re-read entries "
                                    "changed this long before the last run started (allows "
                                    "for clock skew between syncd and the server)")
    referrals: Referrals = Field(
        "ignore", description="search continuation references (entries held by another "
        "partition or server, never followed): ignore them (counted and logged once per "
        "run) or fail the run", examples=["fail"])
    aliases: Aliases = Field(
        "never", description="alias dereferencing in searches: never; search (aliases "
        "below the base); always (the base too). Dereferenced entries may lie outside "
        "the bases", examples=["search"])

    @field_validator("groups", "users")
    @classmethod
    def _base(cls, search: Search) -> Search:
        try:
            normalise_dn(search.base)
        except ValueError as exc:
            raise ValueError(f"base: {exc}") from None
        return search

    @model_validator(mode="after")
    def _bind(self) -> LdapConfig:
        if self.password is not None and self.bind_dn is None:
            raise ValueError("password given without bind_dn")
        if self.url.startswith("ldaps://") and self.start_tls:
            raise ValueError("start_tls does not apply to ldaps:// URLs")
        if self.sasl == "external" and self.password is not None:
            raise ValueError("sasl: external takes no password")
        if self.in_chain and self.schema_ != "ad":
            raise ValueError("in_chain needs schema: ad (Active Directory)")
        return self




@dataclass(frozen=True, slots=True)
class _Scope:
    """A search: its base as written and normalised, scope and filter."""

    base: str
    nbase: str
    scope: Literal["subtree", "one", "base"]
    filter: str

    def contains(self, ndn: str) -> bool:
        """True when normalised ``ndn`` lies where this search looks (filter aside)."""
        return in_scope(ndn, self.nbase, self.scope)


def pack_ids(ids: Iterable[str]) -> str:
    """A set of ids as compact text for the cursor (zlib, base64)."""
    raw = "\n".join(sorted(set(ids))).encode("utf-8")
    return base64.b64encode(zlib.compress(raw, 1)).decode("ascii")


def unpack_ids(text: str) -> set[str]:
    """The ids packed by ``pack_ids``."""
    raw = zlib.decompress(base64.b64decode(text)).decode("utf-8")
    return set(raw.split("\n")) if raw else set()


class _Background:
    """``work`` run in a thread, with this thread's context (log fields); ``result``
    waits for it and returns what it returned or raises what it raised."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._work = work
        self._outcome: tuple[bool, Any] = (False, None)
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,),
                                        name="syncd-ldap-scan", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._outcome = (True, self._work())
        except BaseException as exc:  # handed to the caller of result()
            self._outcome = (False, exc)

    def result(self) -> Any:
        """What the work returned; raise what it raised."""
        self._thread.join()
        done, value = self._outcome
        if not done:
            raise value
        return value


def _generalized_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


class LdapConnector(Connector):
    """Reads groups and users from an LDAP server."""

    type_name = "ldap"
    config_model: ClassVar[type[ConnectorConfig]] = LdapConfig
    supports_delta = True
    # Tests and other libraries may swap the transport; it takes the endpoint.
    transport_factory: Callable[[Endpoint], Transport] = Ldap3Transport

    def __init__(self, config: ConnectorConfig, *, base_dir: Path,
                 needed_attributes: frozenset[str] = frozenset()) -> None:
        super().__init__(config, base_dir=base_dir, needed_attributes=needed_attributes)
        assert isinstance(config, LdapConfig)
        self.settings = config
        self.ad = config.schema_ == "ad"
        self.groups_scope = self._scope(config.groups, DEFAULT_GROUP_FILTER[config.schema_])
        self.users_scope = self._scope(config.users, DEFAULT_USER_FILTER[config.schema_])

    @staticmethod
    def _scope(search: Search, default_filter: str) -> _Scope:
        return _Scope(base=search.base, nbase=normalise_dn(search.base), scope=search.scope,
                      filter=search.filter or default_filter)

    def normalise_ref(self, value: str) -> str:
        """A DN's normalised form; a value that is not a DN (a group name) stays as it is."""
        return dn_ref(value)

    @property
    def source_name(self) -> str:
        """How errors name this connector."""
        return f"ldap connector {self.settings.name!r}"

    def mapper(self) -> Mapper:
        """A fresh mapper for one pass."""
        return Mapper(self.settings.schema_, self.settings.attributes, self.needed_attributes,
                      event="ldap", keep_spelling=self._outside_bases)

    # -- connections -----------------------------------------------------------------------

    def endpoint(self) -> Endpoint:
        """Where and how to connect, from the config (paths relative to the config file)."""
        s = self.settings
        return Endpoint(
            url=s.url, start_tls=s.start_tls, verify=s.tls.verify,
            ca_file=self._path(s.tls.ca_file), cert_file=self._path(s.tls.cert_file),
            key_file=self._path(s.tls.key_file), bind_dn=s.bind_dn,
            password=s.password.get_secret_value() if s.password else None,
            sasl_external=s.sasl == "external", allow_insecure=s.allow_insecure,
            connect_timeout=parse_duration(s.timeouts.connect).total_seconds(),
            operation_timeout=parse_duration(s.timeouts.operation).total_seconds(),
            page_size=s.page_size, aliases=s.aliases, referrals=s.referrals)

    def _path(self, value: str | None) -> str | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else self.base_dir / path)

    def _attempt(self, work: Callable[[Transport], T],
                 references: References | None = None) -> T:
        """Run ``work`` on a fresh connection; retry it whole on transient errors. The
        continuation references of the attempt that succeeds are added to ``references``."""
        name, retries = self.settings.name, self.settings.retries
        for attempt in range(retries + 1):
            transport: Transport | None = None
            try:
                transport = self.transport_factory(self.endpoint())
                result = work(transport)
                if references is not None:
                    references.merge(transport.references)
                return result
            except TransportError as exc:
                if exc.transient and attempt < retries:
                    delay = min(0.5 * 2 ** attempt, 8.0)
                    log.warning("ldap.retry", attempt=attempt + 1, retries=retries,
                                error=str(exc), delay_s=delay)
                    time.sleep(delay)
                    continue
                raise SourceError(f"ldap connector {name!r} ({self.settings.url}): {exc}"
                                  ) from None
            except (ValueError, UnicodeError) as exc:  # an entry the mapping cannot read
                raise SourceError(f"ldap connector {name!r} ({self.settings.url}): "
                                  f"unexpected data from the server: {exc}") from None
            finally:
                if transport is not None:
                    transport.close()
        raise AssertionError("unreachable")

    def _locate(self) -> str:
        return self.settings.url

    def _log_references(self, found: References) -> None:
        """One event a run for the continuation references its searches met."""
        if found.count:
            log.info("ldap.continuation_references", **found.as_dict(),
                     server=self.settings.url, hint="not followed: the entries there are "
                     "held by another partition or server (referrals: fail refuses them)")

    # -- full runs -------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Everything in scope, read completely before the engine sees any of it."""
        found = References()
        snapshot = self._attempt(self._full, found)
        self._log_references(found)
        return snapshot

    def _full(self, t: Transport) -> Snapshot:
        started = datetime.now(UTC)
        ad_state = self._ad_state(t) if self.ad else None
        mapper = self.mapper()
        was_enabled = gc.isenabled()
        gc.disable()  # millions of small objects, no cycles: collections only cost time
        try:
            groups = list(self._groups(t, mapper, self.groups_scope.filter))
            users: list[SourceUser] = []
            for user in self._users(t, mapper, self.users_scope.filter):
                if user is not None:
                    users.append(user)
        finally:
            if was_enabled:
                gc.enable()
        cursor = self._cursor(started, ad_state, (u.external_id for u in users),
                              (g.external_id for g in groups))
        users.extend(self._not_read(users, self._outside_members(t, mapper, groups)))
        for kind in ("group", "user"):
            mapper.check_ids(kind, self.source_name)
            mapper.log_fallbacks(kind, server=self.settings.url)
        return Snapshot(users=users, groups=groups, cursor=cursor)

    def _groups(self, t: Transport, mapper: Mapper, filter: str) -> Iterator[SourceGroup]:
        scope = self.groups_scope
        in_chain = self.settings.in_chain
        attributes = sorted(mapper.group_attributes(members=not in_chain))
        for dn, attrs in t.search_paged(scope.base, scope.scope, filter, attributes):
            if self.ad and not in_chain:
                self._expand_ranges(t, dn, attrs, mapper)
            members = self._in_chain_members(t, dn) if in_chain else None
            yield mapper.group(dn, fast_normalise_dn(dn), attrs, self._locate, members)

    def _users(self, t: Transport, mapper: Mapper, filter: str,
               ) -> Iterator[SourceUser | None]:
        """Users of the search; None for an entry that is not a user (no user name)."""
        scope = self.users_scope
        attributes = sorted(mapper.user_attributes())
        for dn, attrs in t.search_paged(scope.base, scope.scope, filter, attributes):
            yield mapper.user(dn, fast_normalise_dn(dn), attrs, self._locate)

    def _expand_ranges(self, t: Transport, dn: str, attrs: Attrs, mapper: Mapper) -> None:
        """AD returns at most 1,500 values (``member;range=0-1499``): read the rest."""
        for key in [k for k in attrs if ";range=" in k]:
            name, _, span = key.partition(";range=")
            if name not in mapper.member_attrs:
                continue
            values = attrs.pop(key)
            high = span.partition("-")[2]
            while high != "*":
                start = int(high) + 1
                more = t.read(dn, [f"{name};range={start}-*"])
                if more is None:
                    raise TransportError(f"group {dn!r} disappeared while its {name} values "
                                         "were read", transient=True)
                ranged = [k for k in more if k.startswith(name + ";range=")]
                if not ranged:
                    break
                values.extend(more[ranged[0]])
                high = ranged[0].rpartition("-")[2]
            attrs[name] = attrs.get(name, []) + values

    def _in_chain_members(self, t: Transport, dn: str) -> list[str]:
        """The users in ``dn`` at any depth, resolved by the server (AD only)."""
        scope = self.users_scope
        query = (f"(&{scope.filter}(memberOf:{IN_CHAIN_RULE}:="
                 f"{escape_filter_chars(dn)}))")
        return sorted(fast_normalise_dn(found) for found, _ in
                      t.search_paged(scope.base, scope.scope, query, []))

    def _outside_bases(self, ref: str) -> bool:
        """True for a member DN's ref outside both bases (an entry the searches do not read)."""
        return not (ref.startswith(NAME_REF_PREFIX) or self.users_scope.contains(ref)
                    or self.groups_scope.contains(ref))

    def _outside_members(self, t: Transport, mapper: Mapper,
                         groups: list[SourceGroup]) -> list[SourceUser]:
        """Users referenced by groups but outside the configured bases, read one by one by
        the DN the group gave (the normalised ref is no name the server need know)."""
        todo: dict[str, str] = {}
        for group in groups:
            for ref in group.members:
                # In scope (an entry, or a dangling ref the engine reports) or not a DN, the
                # mapper kept no spelling.
                dn = mapper.spelling(ref)
                if dn is not None:
                    todo.setdefault(ref, dn)
        found: list[SourceUser] = []
        attributes = sorted(mapper.user_attributes())
        for ndn, dn in sorted(todo.items()):
            attrs = t.read(dn, attributes, self.users_scope.filter)
            if attrs is None:
                event = ("ldap.member_outside_scope" if t.read(dn, [])
                         is not None else "ldap.member_not_found")
                log.warning(event, dn=dn, server=self.settings.url,
                            hint="not a user entry" if event.endswith("scope") else
                            "the member DN does not exist")
                continue
            user = mapper.user(dn, ndn, attrs, self._locate)
            if user is not None:
                found.append(user)
        return found

    def _not_read(self, read: list[SourceUser], more: list[SourceUser]) -> list[SourceUser]:
        """``more`` without the users in ``read``: with aliases dereferenced, a member
        outside the bases may have been read already, through an alias in scope."""
        if self.settings.aliases == "never" or not more:
            return more
        known = {user.ref for user in read}
        return [user for user in more if user.ref not in known]

    # -- cursors and deltas ----------------------------------------------------------------

    def fingerprint(self) -> str:
        """What a cursor is only valid for: server, searches, mapping and rule attributes,
        and the normal form of DNs (the mirror's refs a delta is laid over)."""
        s = self.settings
        data = {"url": s.url, "schema": s.schema_, "groups": s.groups.model_dump(),
                "users": s.users.model_dump(), "attributes": s.attributes.model_dump(
                    mode="json"), "needed": sorted(self.needed_attributes),
                "in_chain": s.in_chain, "aliases": s.aliases, "dn_form": NORMAL_FORM_VERSION}
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def _ad_state(self, t: Transport) -> dict[str, Any]:
        root = t.read("", ["highestcommittedusn", "dnshostname", "dsservicename"])
        if root is None or not root.get("highestcommittedusn"):
            raise TransportError("the root DSE has no highestCommittedUSN: is this Active "
                                 "Directory? (use schema rfc4519 otherwise)")
        service = value_text(root.get("dsservicename", [b""])[0])
        dsa = t.read(service, ["invocationid"]) if service else None
        invocation = id_text(dsa["invocationid"][0], "objectguid") if dsa and dsa.get(
            "invocationid") else ""
        return {"dc": value_text(root.get("dnshostname", [b""])[0]).lower(),
                "invocation_id": invocation,
                "usn": int(root["highestcommittedusn"][0])}

    def _cursor(self, started: datetime, ad_state: dict[str, Any] | None,
                user_ids: Iterable[str], group_ids: Iterable[str]) -> dict[str, Any]:
        cursor: dict[str, Any] = {"version": CURSOR_VERSION, "fingerprint": self.fingerprint(),
                                  "user_ids": pack_ids(user_ids),
                                  "group_ids": pack_ids(group_ids)}
        if ad_state is not None:
            cursor.update(kind="usn", **ad_state)
        else:
            overlap = parse_duration(self.settings.delta_overlap)
            cursor.update(kind="timestamp", since=_generalized_time(started - overlap))
        return cursor

    def delta(self, cursor: dict[str, Any]) -> Delta | None:
        """Changes since ``cursor``; None (a full run) when the cursor does not fit."""
        delta = self.begin_delta(cursor)
        if delta is not None:
            delta.settle()
        return delta

    def begin_delta(self, cursor: dict[str, Any]) -> Delta | None:
        """``delta``, returned once the changed entries are read: the id-only scans that
        find removals run in a thread, on a connection of their own, beside the searches
        for changes, and go on while the engine reads the mirror (most of a scan's time is
        the server's)."""
        kind = "usn" if self.ad else "timestamp"
        if cursor.get("version") != CURSOR_VERSION or cursor.get("kind") != kind \
                or cursor.get("fingerprint") != self.fingerprint():
            log.info("ldap.cursor_not_usable", reason="configuration or format changed")
            return None
        found = References()  # the run's continuation references, logged when settled
        return self._attempt(lambda t: self._delta(t, cursor, found), found)

    def _delta(self, t: Transport, cursor: dict[str, Any], found: References,
               ) -> Delta | None:
        started = datetime.now(UTC)
        ad_state: dict[str, Any] | None = None
        if self.ad:
            ad_state = self._ad_state(t)
            if (ad_state["dc"], ad_state["invocation_id"]) != (cursor.get("dc"),
                                                               cursor.get("invocation_id")):
                log.info("ldap.cursor_not_usable", reason="another domain controller",
                         dc=ad_state["dc"])
                return None
            changed = f"(uSNChanged>={int(cursor['usn']) + 1})"
        else:
            changed = f"(modifyTimestamp>={escape_filter_chars(str(cursor['since']))})"
        # The id-only scans that find removals run beside the searches for changes, on a
        # connection of their own (and their own mapper): the server does both at once.
        scanned = References()
        scans = _Background(lambda: self._attempt(self._scan_both, scanned))
        mapper = self.mapper()
        try:
            groups, users, nameless = self._changed(t, mapper, changed)
        except BaseException:
            with contextlib.suppress(Exception):  # this run's own error is the one to report
                scans.result()
            raise
        # in scope and changed: kept in the cursor even if the scan, which may have run
        # before, did not see them, so that the next delta finds them removed if they are
        changed_ids = ({g.external_id for g in groups}, {u.external_id for u in users})
        users.extend(self._not_read(users, self._outside_members(t, mapper, groups)))

        def removals() -> Removals:
            group_ids, user_ids, scan_mapper = scans.result()
            found.merge(scanned)  # the first connection's are in already (begin_delta)
            self._log_references(found)
            # The scans saw every entry in scope: they are judged first, on their own (their
            # counts are exact, the changed entries are among them); then together with the
            # entries read for changes and the members outside the bases.
            for kind in ("group", "user"):
                scan_mapper.check_ids(kind, self.source_name)
                mapper.check_ids(kind, self.source_name, scan_mapper)
            removed_groups = unpack_ids(cursor["group_ids"]) - group_ids
            removed_users = (unpack_ids(cursor["user_ids"]) - user_ids) | set(nameless)
            user_ids = (user_ids | changed_ids[1]) - set(nameless)
            group_ids |= changed_ids[0]
            log.info("ldap.delta", changed_groups=len(groups), changed_users=len(users),
                     removed_groups=len(removed_groups), removed_users=len(removed_users))
            return (sorted(removed_users), sorted(removed_groups),
                    self._cursor(started, ad_state, user_ids, group_ids))

        return Delta(users=users, groups=groups, removed_users=[], removed_groups=[],
                     cursor={}, pending=removals)

    def _changed(self, t: Transport, mapper: Mapper, changed: str,
                 ) -> tuple[list[SourceGroup], list[SourceUser], list[str]]:
        """Groups and users matching the change filter, and the ids of changed entries
        that are not users (no user name)."""
        groups = list(self._groups(t, mapper, f"(&{self.groups_scope.filter}{changed})"))
        users: list[SourceUser] = []
        nameless: list[str] = []
        for dn, attrs in t.search_paged(
                self.users_scope.base, self.users_scope.scope,
                f"(&{self.users_scope.filter}{changed})", sorted(mapper.user_attributes())):
            ndn = fast_normalise_dn(dn)
            user = mapper.user(dn, ndn, attrs, self._locate)
            if user is None:
                nameless.append(mapper.id_or_fallback(attrs, ndn, "user", dn, self._locate))
            else:
                users.append(user)
        return groups, users, nameless

    def _scan_both(self, t: Transport) -> tuple[set[str], set[str], Mapper]:
        """The ids of every group and every user in scope, and the mapper that counted
        them (made for each attempt, so that a retry counts afresh)."""
        mapper = self.mapper()
        return (self._scan_ids(t, mapper, self.groups_scope, "group"),
                self._scan_ids(t, mapper, self.users_scope, "user"), mapper)

    def _scan_ids(self, t: Transport, mapper: Mapper, scope: _Scope, kind: str) -> set[str]:
        """The ids of every entry in ``scope``, asking for the id attribute only."""
        key = mapper.id_attr
        dns: list[str] = []
        raws: list[bytes] = []
        others: list[tuple[str, Attrs]] = []  # no id value: an id from the DN
        for dn, attrs in t.search_paged(scope.base, scope.scope, scope.filter, [key]):
            values = attrs.get(key)
            if values:
                dns.append(dn)
                raws.append(values[0])
            else:
                others.append((dn, attrs))
        plain = mapper.plain_ids(raws)  # most often all of them, in a few C calls
        if plain is not None:
            ids = set(plain)
            mapper.count_found(kind, len(plain))
        else:
            ids = set()
            others.extend((dn, {key: [raw]}) for dn, raw in zip(dns, raws, strict=True))
        for dn, attrs in others:
            found = mapper.entry_id(attrs)  # the DN is normalised only where there is none
            if found is None:
                found = mapper.id_or_fallback(attrs, fast_normalise_dn(dn), kind, dn,
                                              self._locate)
            else:
                mapper.count_found(kind, 1)
            ids.add(found)
        return ids

    # -- test-connection -------------------------------------------------------------------

    def test_connection(self) -> dict[str, Any]:
        """Bind, count the groups and users in scope (ids only), and time each step."""
        timings: dict[str, float] = {}
        found = References()

        def work(t: Transport) -> dict[str, int]:
            timings["connect_and_bind_s"] = round(time.monotonic() - started, 3)
            counts = {}
            for kind, scope in (("groups", self.groups_scope), ("users", self.users_scope)):
                began = time.monotonic()
                counts[kind] = sum(1 for _ in t.search_paged(scope.base, scope.scope,
                                                             scope.filter, []))
                timings[f"{kind}_s"] = round(time.monotonic() - began, 3)
            return counts

        started = time.monotonic()
        counts = self._attempt(work, found)
        timings["total_s"] = round(time.monotonic() - started, 3)
        s = self.settings
        bind = ("sasl external" if s.sasl else f"simple as {s.bind_dn}" if s.bind_dn
                else "anonymous")
        tls = ("ldaps" if s.url.lower().startswith("ldaps://") else
               "starttls" if s.start_tls else "none")
        return {"connector": s.name, "url": s.url, "bind": bind, "tls": tls,
                "verify": s.tls.verify, **counts, "references": found.as_dict(),
                "timings": timings}
