"""Entry to SourceUser / SourceGroup mapping shared by the LDAP-shaped connectors.

An entry is its DN plus ``dict[str, list[bytes]]`` keyed by lower-case attribute name (as
an LDIF record holds it, and as the LDAP transport decodes it). The presets and overrides of
CONTRACT section 2 decide which attribute is what; ``Mapper`` also says which attributes to
fetch, so that connectors ask for those only.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from fnmatch import fnmatchcase

import structlog

from connectors.dn import normalise_dn, rdn_value, strip_dn
from connectors.ldapcommon import Attributes
from syncd.config.rules import AttributeMatch
from syncd.errors import SourceError
from syncd.source import NAME_REF_PREFIX, SourceGroup, SourceUser

log = structlog.get_logger("syncd.connectors.ldapmap")

Attrs = dict[str, list[bytes]]
# Where an entry comes from, for warnings: "FILE:LINE" for LDIF, the server for LDAP.
Locate = Callable[[], str]

# uniqueMember is "DN#'bits'B" (RFC 4517 NameAndOptionalUID); the bits are not part of the DN.
_OPTIONAL_UID = re.compile(r"(?<!\\)#'[01]*'B\s*$")
_UUID_TEXT = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
AD_ACCOUNT_DISABLE = 0x2
# The connectors' name for the normaliser; its shortcut for plain DNs lives in connectors/dn.py.
fast_normalise_dn = normalise_dn


def invalid_member_ref(value: str) -> str:
    """The ref of a member value that is not a DN: it resolves to nothing (no entry's ref is
    a normalised DN starting so, nor a ``name:`` ref), so the engine reports it as a
    ``dangling_member`` with the value shown."""
    return f"invalid DN {value!r}"


def value_text(value: bytes) -> str:
    """A value as text: UTF-8 where it decodes, else its base64 spelling (binary data)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")


def first(attrs: Attrs, name: str) -> bytes | None:
    """The first value of ``name`` (case-insensitive), or None."""
    values = attrs.get(name.lower())
    return values[0] if values else None


def text(attrs: Attrs, name: str) -> str | None:
    """The first value of ``name`` as stripped text, or None when absent or blank."""
    raw = first(attrs, name)
    if raw is None:
        return None
    return value_text(raw).strip() or None


def id_text(raw: bytes, attribute: str) -> str:
    """An id value as text: objectGUID as its GUID string, UUIDs in lower case."""
    if attribute.lower() == "objectguid" and len(raw) == 16:
        return str(uuid.UUID(bytes_le=raw))  # Microsoft's mixed-endian GUID layout
    value = value_text(raw).strip()
    return value.lower() if _UUID_TEXT.fullmatch(value) else value


def matches(condition: AttributeMatch | None, attrs: Attrs) -> bool:
    """An attribute condition of the rules language, applied to an entry.

    Every test given must hold for some value; ``present`` asks whether there is a value.
    """
    if condition is None:
        return False
    values = [value_text(v) for v in attrs.get(condition.name.lower(), [])]
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


class Mapper:
    """Maps entries to source users and groups for one preset with its overrides.

    ``event`` prefixes warning names (``ldif.user_without_name``), so each connector's logs
    say which connector saw the entry.
    """

    def __init__(self, schema: str, attributes: Attributes, needed: frozenset[str], *,
                 event: str, keep_spelling: Callable[[str], bool] | None = None) -> None:
        self.schema = schema
        self.overrides = attributes
        self.names = attributes.resolved(schema)
        self.needed = needed
        self.event = event
        self.id_attr = self.names["id"].lower()
        member = self.names["member"].lower()
        self.member_attrs = (["member", "uniquemember"]
                             if schema == "rfc4519" and member == "member" else [member])
        # Per kind: entries with an id, entries given one from their DN, and the first of
        # those (its DN and where it was read), for check_ids.
        self.found = {"group": 0, "user": 0}
        self.fallbacks = {"group": 0, "user": 0}
        self.first_fallback: dict[str, tuple[str, str]] = {}
        # Member lists repeat the same DNs: normalise each spelling once, share the result.
        self._refs: dict[str, str] = {}
        # Member refs for which ``keep_spelling`` holds (the ldap connector: those outside
        # its bases, which it reads back) -> the DN as first given: a server is asked by the
        # DN it wrote, never by the normal form, which is only a key for matching.
        self.keep_spelling = keep_spelling
        self._spellings: dict[str, str] = {}

    # -- what to fetch ---------------------------------------------------------------------

    def group_attributes(self, *, members: bool = True) -> set[str]:
        """Lower-case attribute names a group entry needs (without members if asked)."""
        keep = {self.names[k].lower() for k in ("id", "group_name", "description")}
        keep |= set(self.needed)
        if members:
            keep |= set(self.member_attrs)
        return keep

    def user_attributes(self) -> set[str]:
        """Lower-case attribute names a user entry needs."""
        keep = {self.names[k].lower() for k in ("id", "user_name", "email", "display_name")}
        keep |= {c.name.lower() for c in self.conditions()}
        if self.schema == "ad":
            keep.add("useraccountcontrol")
        return keep

    def conditions(self) -> list[AttributeMatch]:
        """The user conditions configured (disabled, external)."""
        return [c for c in (self.overrides.user_disabled, self.overrides.user_external)
                if c is not None]

    # -- ids -------------------------------------------------------------------------------

    def entry_id(self, attrs: Attrs) -> str | None:
        """The entry's stable id, or None when it has no id attribute."""
        raw = first(attrs, self.id_attr)
        if raw is None or not raw.strip():
            return None
        return id_text(raw, self.id_attr)

    def plain_ids(self, raws: list[bytes]) -> list[str] | None:
        """``entry_id`` of many first id values at once, where every one is plain: ASCII
        without white space or capitals (as OpenLDAP gives entryUUIDs), which ``entry_id``
        would take as it is. Else None: take them one by one."""
        if self.id_attr == "objectguid":
            return None
        if not raws:
            return []
        joined = b"\n".join(raws)
        if not joined.isascii() or joined.lower() != joined:
            return None
        text = joined.decode("ascii")
        # no white space but the separators (str.split's idea of it, the widest)
        if text.count("\n") != len(raws) - 1 \
                or len("".join(text.split())) != len(text) - (len(raws) - 1):
            return None
        ids = text.split("\n")
        return ids if all(ids) else None  # an empty value has no id

    def id_or_fallback(self, attrs: Attrs, ndn: str, kind: str, dn: str | None = None,
                       locate: Locate | None = None) -> str:
        """The id, else a UUID 5 of the normalised DN; both are counted (``check_ids``)."""
        found = self.entry_id(attrs)
        if found is not None:
            self.found[kind] += 1
            return found
        if not self.fallbacks[kind]:
            self.first_fallback[kind] = (dn or ndn, locate() if locate is not None else "")
        self.fallbacks[kind] += 1
        return str(uuid.uuid5(uuid.NAMESPACE_X500, ndn))

    def count_found(self, kind: str, count: int) -> None:
        """Count ``count`` entries of ``kind`` whose ids were read without ``id_or_fallback``."""
        self.found[kind] += count

    def check_ids(self, kind: str, source: str, *others: Mapper) -> None:
        """Fail when some entries of ``kind`` (here and in ``others``) had an id and some none.

        Such a source answered in part: an entry that lost its id (an export cut short or
        edited, an attribute not filled in) would get another id from its DN, and the sync
        would delete its group and make it again. A source where no entry has one keeps ids
        from DNs. Users and groups are judged apart: an id attribute may be one that only
        users carry (``employeeNumber``), and then every group's id comes from its DN.
        """
        mappers = (self, *others)
        found = sum(m.found[kind] for m in mappers)
        missing = sum(m.fallbacks[kind] for m in mappers)
        if not (found and missing):
            return
        dn, where = next(m.first_fallback[kind] for m in mappers if m.fallbacks[kind])
        lacking = f"{kind} {dn}" + (f" ({where})" if where else "") + (
            f" and {missing - 1} more have" if missing > 1 else " has")
        having = f"{found} other {kind}" + (" has" if found == 1 else "s have")
        attribute = self.names["id"]
        raise SourceError(
            f"{source}: {lacking} no {attribute} while {having} one: a partial answer (an "
            f"export cut short or edited?) is refused; every {kind} needs {attribute}, or "
            "none (ids from DNs)")

    def log_fallbacks(self, kind: str, **where: str) -> None:
        """Warn once about the entries of ``kind`` whose ids were derived from DNs."""
        count = self.fallbacks[kind]
        if count:
            log.warning(f"{self.event}.ids_from_dn", kind=kind, count=count,
                        attribute=self.names["id"], **where,
                        hint="ids derived from DNs: renames cannot be followed")
        self.fallbacks[kind] = 0

    # -- groups ----------------------------------------------------------------------------

    def group(self, dn: str, ndn: str, attrs: Attrs, locate: Locate,
              members: list[str] | None = None) -> SourceGroup:
        """A source group; ``members`` replaces the member refs read from ``attrs``."""
        needed = self.needed
        return SourceGroup(
            external_id=self.id_or_fallback(attrs, ndn, "group", dn, locate),
            ref=ndn,
            dn=dn,
            name=self._group_name(dn, attrs, locate),
            description=text(attrs, self.names["description"]) or "",
            attributes={name: [value_text(v) for v in attrs[name]]
                        for name in sorted(needed) if attrs.get(name)},
            members=self.members(dn, attrs, locate) if members is None else members,
        )

    def _group_name(self, dn: str, attrs: Attrs, locate: Locate) -> str:
        name = text(attrs, self.names["group_name"])
        if name:
            return name
        # Fall back on the RDN's value so the group still has a usable name.
        fallback = rdn_value(dn) or dn
        log.warning(f"{self.event}.group_without_name", dn=dn, location=locate(),
                    attribute=self.names["group_name"], name=fallback)
        return fallback

    def members(self, dn: str, attrs: Attrs, locate: Locate) -> list[str]:
        """The member refs of a group entry, in value order, without repeats."""
        refs: list[str] = []
        seen: set[str] = set()
        for attr in self.member_attrs:
            for raw in attrs.get(attr, ()):
                ref = self.member_ref(dn, attr, value_text(raw), locate)
                if ref and ref not in seen:
                    seen.add(ref)
                    refs.append(ref)
        return refs

    def member_ref(self, dn: str, attr: str, value: str, locate: Locate) -> str | None:
        """One member value as a ref: ``name:UID`` for memberUid, else a normalised DN
        (``invalid_member_ref`` for a value that is not a DN); None for an empty value."""
        if attr == "memberuid":
            value = value.strip()
            return NAME_REF_PREFIX + value if value else None
        key = value if attr != "uniquemember" else "\0" + value
        cached = self._refs.get(key)
        if cached is not None:
            return cached
        if attr == "uniquemember":
            value = _OPTIONAL_UID.sub("", value)
        value = strip_dn(value)
        if not value:
            return None
        try:
            ref = normalise_dn(value)
        except ValueError as exc:
            log.warning(f"{self.event}.invalid_member", group=dn, attribute=attr, value=value,
                        location=locate(), error=str(exc))
            ref = invalid_member_ref(value)
        else:
            if self.keep_spelling is not None and self.keep_spelling(ref):
                self._spellings.setdefault(ref, value)
        if len(self._refs) < 1_000_000:
            self._refs[key] = ref
        return ref

    def spelling(self, ref: str) -> str | None:
        """The member DN that gave ``ref``, as the group wrote it, where ``keep_spelling``
        held for it; else None."""
        return self._spellings.get(ref)

    # -- users -----------------------------------------------------------------------------

    def user(self, dn: str, ndn: str, attrs: Attrs, locate: Locate) -> SourceUser | None:
        """A source user, or None (with a warning) when the entry has no user name."""
        user_name = text(attrs, self.names["user_name"])
        if not user_name:
            log.warning(f"{self.event}.user_without_name", dn=dn, location=locate(),
                        attribute=self.names["user_name"])
            return None
        return SourceUser(
            external_id=self.id_or_fallback(attrs, ndn, "user", dn, locate),
            ref=ndn,
            user_name=user_name,
            email=text(attrs, self.names["email"]),
            display_name=text(attrs, self.names["display_name"]),
            disabled=self._disabled(dn, attrs, locate),
            external=matches(self.overrides.user_external, attrs),
        )

    def _disabled(self, dn: str, attrs: Attrs, locate: Locate) -> bool:
        condition = self.overrides.user_disabled
        if condition is not None:
            return matches(condition, attrs)
        if self.schema != "ad":
            return False
        raw = first(attrs, "userAccountControl")
        if raw is None:
            return False
        try:
            return bool(int(raw) & AD_ACCOUNT_DISABLE)
        except ValueError:
            log.warning(f"{self.event}.invalid_user_account_control", dn=dn,
                        location=locate(), value=value_text(raw))
            return False
