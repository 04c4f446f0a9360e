"""The plan: change objects with a fixed ordering, held per connector, with checksums.

A dry run builds the plan, renders it and stops; a real run applies the same plan.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from itertools import groupby
from operator import attrgetter
from typing import Any, ClassVar, cast

from syncd.rules import Warning

OPS = ("create_group", "update_group", "delete_group", "archive_group", "add_member",
       "remove_member", "change_role", "set_member_status", "create_user", "invite_user")


@dataclass(slots=True)
class Change:
    """Base of every change; ``op`` names it and ``rank`` orders it for apply.

    ``key`` identifies the store group a change is about: the group's id, or ``new:<external
    id>`` for a group the same plan creates. It is internal: plan files keep it, the JSON
    output of ``sync`` does not.
    """

    op: ClassVar[str]
    rank: ClassVar[int]
    internal: ClassVar[tuple[str, ...]] = ("key",)

    def sort_key(self) -> tuple[int, str, str]:
        """Apply order: users, the members of groups to delete, those groups, groups
        changed, then created (so that a name one group gives up passes to another in the
        same run), members, then removals."""
        return (self.rank, getattr(self, "group", "") or "", getattr(self, "user", "") or "")

    def to_json(self, internal: bool = False) -> dict[str, Any]:
        """The change as CONTRACT section 4 shows it (``internal`` adds the apply keys)."""
        out: dict[str, Any] = {"op": self.op}
        for f in fields(self):
            if internal or f.name not in self.internal:
                out[f.name] = getattr(self, f.name)
        return out


@dataclass(slots=True)
class CreateUser(Change):
    """A user the directory has and the store does not."""

    op: ClassVar[str] = "create_user"
    rank: ClassVar[int] = 0
    internal: ClassVar[tuple[str, ...]] = ("display_name", "external_id")
    user: str
    email: str | None
    external: bool
    source: str
    display_name: str | None = None
    external_id: str | None = None


@dataclass(slots=True)
class InviteUser(CreateUser):
    """A user created as an invitation (memberships start ``invited``)."""

    op: ClassVar[str] = "invite_user"
    rank: ClassVar[int] = 0


@dataclass(slots=True)
class CreateGroup(Change):
    """A new group made from a source group."""

    op: ClassVar[str] = "create_group"
    rank: ClassVar[int] = 4
    group: str
    source: str
    external_id: str
    rule: str
    attributes: dict[str, Any]
    key: str = ""


@dataclass(slots=True)
class UpdateGroup(Change):
    """Changed fields of a managed group (a rename has ``name`` in ``fields``)."""

    op: ClassVar[str] = "update_group"
    rank: ClassVar[int] = 3
    group: str
    source: str
    rule: str
    fields: dict[str, dict[str, Any]]
    key: str = ""


@dataclass(slots=True)
class AddMember(Change):
    """A membership to add."""

    op: ClassVar[str] = "add_member"
    rank: ClassVar[int] = 5
    group: str
    user: str
    role: str
    status: str
    rule: str
    key: str = ""


@dataclass(slots=True)
class ChangeRole(Change):
    """A member's role to change."""

    op: ClassVar[str] = "change_role"
    rank: ClassVar[int] = 6
    group: str
    user: str
    old: str
    new: str
    rule: str
    key: str = ""


@dataclass(slots=True)
class SetMemberStatus(Change):
    """A member's status to change (deactivated for a disabled user, back to accepted)."""

    op: ClassVar[str] = "set_member_status"
    rank: ClassVar[int] = 6
    group: str
    user: str
    old: str
    new: str
    rule: str
    key: str = ""


@dataclass(slots=True)
class RemoveMember(Change):
    """A membership to remove."""

    op: ClassVar[str] = "remove_member"
    rank: ClassVar[int] = 7
    group: str
    user: str
    rule: str
    key: str = ""


@dataclass(slots=True)
class RemoveMemberWithGroup(RemoveMember):
    """A membership that goes because its group is deleted, whoever made it (a manual one
    too): every membership that goes is in the plan and audited. Applied before the group's
    deletion; ``role``, ``status`` and ``origin`` are the row's, for its audit record."""

    rank: ClassVar[int] = 1
    internal: ClassVar[tuple[str, ...]] = ("key", "role", "status", "origin")
    role: str = ""
    status: str = ""
    origin: str = ""


@dataclass(slots=True)
class ArchiveGroup(Change):
    """A managed group gone from the source, archived by its rule."""

    op: ClassVar[str] = "archive_group"
    rank: ClassVar[int] = 8
    group: str
    source: str
    rule: str
    key: str = ""


@dataclass(slots=True)
class DeleteGroup(Change):
    """A managed group gone from the source, deleted by its rule (memberships go too)."""

    op: ClassVar[str] = "delete_group"
    rank: ClassVar[int] = 2
    group: str
    source: str
    rule: str
    key: str = ""


CHANGE_TYPES: dict[str, type[Change]] = {
    cls.op: cls for cls in (CreateUser, InviteUser, CreateGroup, UpdateGroup, AddMember,
                            ChangeRole, SetMemberStatus, RemoveMember, ArchiveGroup,
                            DeleteGroup)
}


def change_class(data: dict[str, Any]) -> type[Change] | None:
    """The class of a change written with ``to_json(internal=True)`` (None for an unknown
    op): a removal that carries its row's ``origin`` goes with its group."""
    cls = CHANGE_TYPES.get(data.get("op"))  # type: ignore[arg-type]
    if cls is RemoveMember and "origin" in data:
        return RemoveMemberWithGroup
    return cls


def change_from_json(data: dict[str, Any]) -> Change:
    """Rebuild a change written with ``to_json(internal=True)``."""
    cls = change_class(data)
    assert cls is not None, data.get("op")
    return cls(**{k: v for k, v in data.items() if k != "op"})


@dataclass(frozen=True)
class Blocked:
    """A tripped safety check."""

    check: str
    limit: int | None = None
    planned: int | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"check", "limit", "planned"}`` (and ``detail`` where there is one)."""
        out: dict[str, Any] = {"check": self.check}
        if self.limit is not None:
            out["limit"] = self.limit
        if self.planned is not None:
            out["planned"] = self.planned
        if self.detail:
            out["detail"] = self.detail
        return out


# a change's class: ``type`` itself (C), typed for the sort's buckets
_kind = cast("Callable[[Change], type[Change]]", type)


_group = attrgetter("group")
_user = attrgetter("user")


def _by_group_user(items: list[Change]) -> list[Change]:
    """Member changes of one rank in (group, user) order, as a stable sort by that pair
    leaves them.

    A diff makes a group's member changes one after another: the runs of one group, put
    together (in the order given, should a group come in more than one run) and sorted by
    user name, then the groups by name, are that order; faster than sorting millions of
    changes by the pair, and kinder to the memory caches.
    """
    by_group: dict[str, list[Change]] = {}
    for name, run in groupby(items, key=_group):
        held = by_group.get(name)
        if held is None:
            by_group[name] = list(run)
        else:
            held.extend(run)
    out: list[Change] = []
    for name in sorted(by_group):
        changes = by_group[name]
        if len(changes) > 1:
            changes.sort(key=_user)
        out.extend(changes)
    return out


def _by_op(kinds: Counter[type[Change]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for cls, n in kinds.items():
        out[cls.op] += n
    return out


@dataclass
class ConnectorPlan:
    """One connector's part of a run: what it saw, what would change, what blocks it."""

    connector: str
    mode: str
    changes: list[Change] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    blocked_by: list[Blocked] = field(default_factory=list)
    groups_seen: int = 0
    users_seen: int = 0
    status: str = "ok"
    error: str | None = None
    state_digest: str = ""
    managed_groups: int = 0
    managed_members: int = 0
    managed_by_rule: dict[str, tuple[int, int]] = field(default_factory=dict)
    _counted: tuple[list[Change], Counter[str]] | None = field(default=None, repr=False,
                                                              compare=False)

    def sort(self) -> None:
        """Put the changes in their fixed order."""
        # By rank first, then within a rank (whose changes all have the same attributes)
        # by name: millions of changes sort in a second or two.
        buckets: dict[int, list[Change]] = {}
        classes: dict[int, set[type[Change]]] = {}
        for cls, run in groupby(self.changes, key=_kind):  # runs of one kind, in C
            buckets.setdefault(cls.rank, []).extend(run)
            classes.setdefault(cls.rank, set()).add(cls)
        # the counts on the way, in the order of the sorted changes
        kinds: Counter[type[Change]] = Counter()
        ordered: list[Change] = []
        for rank in sorted(buckets):
            items = buckets[rank]
            names = [n for n in ("group", "user") if hasattr(items[0], n)]
            if names == ["group", "user"]:
                items = _by_group_user(items)
            else:
                items.sort(key=attrgetter(*names))
            ordered.extend(items)
            if len(classes[rank]) == 1:
                kinds[type(items[0])] += len(items)
            else:
                kinds.update(map(type, items))
        self.changes = ordered
        self._counted = (ordered, _by_op(kinds))

    def counts(self) -> Counter[str]:
        """How many changes of each op (counted by class, in C: a plan holds millions;
        the sort counts them on its way, for as long as the list it made is unchanged)."""
        if self._counted is not None:
            changes, counts = self._counted
            if changes is self.changes and counts.total() == len(changes):
                return Counter(counts)
        return _by_op(Counter(map(type, self.changes)))

    def report(self) -> dict[str, Any]:
        """The ``connectors`` entry of the JSON output."""
        return {"mode": self.mode, "status": self.status, "groups_seen": self.groups_seen,
                "users_seen": self.users_seen, "error": self.error}


@dataclass
class Plan:
    """The changes of one run over one or more connectors."""

    run_id: str
    connectors: dict[str, ConnectorPlan] = field(default_factory=dict)

    @property
    def changes(self) -> list[Change]:
        """Every change, connector by connector, each in its fixed order."""
        return [c for cp in self.connectors.values() for c in cp.changes]

    def summary(self) -> dict[str, int]:
        """Counts of every op (0 where none), as CONTRACT section 4 lists them."""
        counts: Counter[str] = Counter()
        for cp in self.connectors.values():
            counts.update(cp.counts())
        return {op: counts.get(op, 0) for op in OPS}

    def warnings(self) -> list[Warning]:
        """Warnings of every connector."""
        return [w for cp in self.connectors.values() for w in cp.warnings]

    def blocked_by(self) -> list[Blocked]:
        """Tripped checks of every connector."""
        return [b for cp in self.connectors.values() for b in cp.blocked_by]

    def checksum(self) -> str:
        """sha256 over the changes in order: equal plans have equal checksums."""
        return checksum_of(c.to_json() for cp in self.connectors.values() for c in cp.changes)


def checksum_of(items: Any) -> str:
    """sha256 of a stream of JSON-ready items, canonically encoded."""
    h = hashlib.sha256()
    for item in items:
        h.update(json.dumps(item, sort_keys=True, separators=(",", ":"),
                            ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return "sha256:" + h.hexdigest()
