"""The source index: a complete snapshot held compactly, with references resolved.

Member references are interned as they stream in (each distinct ref string is kept once)
and resolved to user and group positions once both streams are read, so that a directory
with millions of memberships costs a few bytes per membership. The index as added can be
saved in one value and read back (``saved``, ``from_saved``), with entries dropped and added
before it is resolved: how a delta run reads the mirror.
"""

from __future__ import annotations

import marshal
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import count, repeat
from typing import Any, cast

from syncd.source import NAME_REF_PREFIX, SourceGroup, SourceUser


@dataclass(slots=True)
class Resolved:
    """A group's direct members, resolved: user positions, group positions, dangling refs."""

    users: array[int] = field(default_factory=lambda: array("i"))
    groups: array[int] = field(default_factory=lambda: array("i"))
    dangling: list[str] = field(default_factory=list)


# SourceUser's and SourceGroup's fields in the order of their constructors (what ``saved``
# keeps; a group's members and owners are kept as numbered refs).
_USER_FIELDS = ("external_id", "ref", "user_name", "email", "display_name", "disabled",
                "external")
_GROUP_FIELDS = ("external_id", "ref", "dn", "name", "description", "attributes")
# marshal's format may change between Python versions: such data is not read
_SAVED_HEADER = f"syncd-index 3 {sys.version_info[0]}.{sys.version_info[1]}\n".encode()


class SourceIndex:
    """Users and groups of one connector's complete snapshot, with resolved members."""

    def __init__(self) -> None:
        self.users: list[SourceUser] = []
        self.groups: list[SourceGroup] = []
        self.members: list[Resolved] = []
        self.owners: list[Resolved] = []
        self._user_by_ref: dict[str, int] = {}
        self._user_by_name: dict[str, int] = {}
        self._group_by_ref: dict[str, int] = {}
        self._group_by_id: dict[str, int] = {}
        self._group_by_name: dict[str, list[int]] = {}
        # each distinct member ref once, with a number (from _numbers: unique, not dense)
        self._refs: dict[str, int] = {}
        self._numbers = count()
        self._ref_of: dict[int, str] = {}  # number -> ref, made by resolve
        self._raw_members: list[array[int]] = []
        self._raw_owners: list[array[int]] = []
        # number -> user position or None, while resolve runs, when no user's ref starts
        # with NAME_REF_PREFIX
        self._user_at: dict[int, int | None] | None = None

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def build(cls, users: Iterable[SourceUser], groups: Iterable[SourceGroup]) -> SourceIndex:
        """Read both streams to the end and resolve every reference."""
        index = cls()
        for user in users:
            index.add_user(user)
        for group in groups:
            index.add_group(group)
        index.resolve()
        return index

    def _intern(self, refs: list[str]) -> array[int]:
        """The refs' numbers, each distinct ref kept once (setdefault, in C)."""
        return array("i", map(self._refs.setdefault, refs, self._numbers))

    def add_user(self, user: SourceUser) -> None:
        """Add one user; where two share a ref or a user name, look-ups find the first."""
        self._user_by_ref.setdefault(user.ref, len(self.users))
        self._user_by_name.setdefault(user.user_name, len(self.users))
        self.users.append(user)

    def add_group(self, group: SourceGroup) -> None:
        """Add one group; its member refs are interned and its ``members`` and ``owners``
        lists are emptied in place (the index keeps them compactly; build from fresh
        objects)."""
        members, owners = self._intern(group.members), self._intern(group.owners)
        group.members = []
        group.owners = []
        self._place(group, members, owners)

    def _place(self, group: SourceGroup, members: array[int], owners: array[int]) -> None:
        pos = len(self.groups)
        self._group_by_ref.setdefault(group.ref, pos)
        self._group_by_id.setdefault(group.external_id, pos)
        self._group_by_name.setdefault(group.name.casefold(), []).append(pos)
        self._raw_members.append(members)
        self._raw_owners.append(owners)
        self.groups.append(group)

    def drop(self, user_ids: set[str], group_ids: set[str]) -> None:
        """Take out the users and groups added so far with these external ids; look-ups
        then find what they would have found had those never been added. Only before
        ``resolve``."""
        if self.members or self.owners:
            raise RuntimeError("SourceIndex.drop after resolve")
        if user_ids and any(u.external_id in user_ids for u in self.users):
            users = [u for u in self.users if u.external_id not in user_ids]
            self.users, self._user_by_ref, self._user_by_name = [], {}, {}
            for user in users:
                self.add_user(user)
        if group_ids and any(g.external_id in group_ids for g in self.groups):
            kept = [(g, self._raw_members[pos], self._raw_owners[pos])
                    for pos, g in enumerate(self.groups) if g.external_id not in group_ids]
            self.groups, self._raw_members, self._raw_owners = [], [], []
            self._group_by_ref, self._group_by_id, self._group_by_name = {}, {}, {}
            for group, members, owners in kept:
                self._place(group, members, owners)

    def _resolve_list(self, raw: array[int]) -> Resolved:
        if not raw:
            return Resolved(array("i"), array("i"), [])
        if self._user_at is not None:
            # The common case, in C: every ref is a user's own ref (a DN). ``lookup`` would
            # find each the same way, as no user's ref starts with NAME_REF_PREFIX.
            positions = list(map(self._user_at.__getitem__, raw))
            if None not in positions:  # so all are ints
                return Resolved(array("i", dict.fromkeys(cast("list[int]", positions))),
                                array("i"), [])
        refs = list(map(self._ref_of.__getitem__, raw))
        out = Resolved()
        seen_u: set[int] = set()
        seen_g: set[int] = set()
        for ref in refs:
            kind, pos = self.lookup(ref)
            if kind == "user" and pos not in seen_u:
                seen_u.add(pos)
                out.users.append(pos)
            elif kind == "group" and pos not in seen_g:
                seen_g.add(pos)
                out.groups.append(pos)
            elif kind is None:
                out.dangling.append(ref)
        return out

    def resolve(self) -> None:
        """Resolve every group's member and owner references."""
        numbers, refs = self._refs.values(), self._refs.keys()
        self._ref_of = dict(zip(numbers, refs, strict=True))
        if not any(map(str.startswith, self._user_by_ref, repeat(NAME_REF_PREFIX))):
            # number -> the user position of its ref, or None: one look-up a distinct ref
            self._user_at = dict(zip(numbers, map(self._user_by_ref.get, refs), strict=True))
        self.members = [self._resolve_list(raw) for raw in self._raw_members]
        self.owners = [self._resolve_list(raw) for raw in self._raw_owners]
        # the refs as numbered and the groups' numbers stay: ``saved`` writes them
        self._ref_of = {}
        self._user_at = None

    # -- saving -----------------------------------------------------------------------------

    def saved(self) -> bytearray:
        """The index as added, before resolution, in one value (``from_saved`` reads it):
        users and groups column by column and member refs as numbers, which load many
        times faster than the mirror's rows. Written a column at a time, so that a large
        index is not held twice over."""
        out = bytearray(_SAVED_HEADER)
        for part in self._saved_parts():
            data = marshal.dumps(part)
            out += len(data).to_bytes(8, "big")  # marshal.load from a stream reads
            out += data  # piecemeal and slowly: each part is read whole, by its length
        return out

    def _saved_parts(self) -> Iterator[Any]:
        yield list(self._refs)
        yield list(self._refs.values())
        for name in _USER_FIELDS:
            yield [getattr(u, name) for u in self.users]
        for name in _GROUP_FIELDS:
            yield [getattr(g, name) for g in self.groups]
        yield [raw.tobytes() for raw in self._raw_members]
        yield [raw.tobytes() for raw in self._raw_owners]

    @classmethod
    def from_saved(cls, data: bytes) -> SourceIndex | None:
        """An index as ``saved`` left it, not yet resolved (more may be added or dropped);
        None when ``data`` was written in another format or by another Python version."""
        if not data.startswith(_SAVED_HEADER):
            return None
        index = cls()
        view = memoryview(data)
        at = len(_SAVED_HEADER)

        def load() -> Any:
            nonlocal at
            size = int.from_bytes(view[at:at + 8], "big")
            if at + 8 + size > len(view):
                raise EOFError("saved index cut short")
            at += 8 + size
            # the store's own data, which only syncd writes (as trusted as every other row)
            return marshal.loads(view[at - size:at])  # noqa: S302

        try:
            refs, numbers = load(), load()
            users = [load() for _ in _USER_FIELDS]
            for user in map(SourceUser, *users):
                index.add_user(user)
            del users
            groups = [load() for _ in _GROUP_FIELDS]
            members, owners = load(), load()
            index._refs = dict(zip(refs, numbers, strict=True))
            index._numbers = count(max(numbers, default=-1) + 1)
            for group, m, o in zip(map(SourceGroup, *groups), members, owners, strict=True):
                index._place(group, array("i", m), array("i", o))
        except (ValueError, EOFError, TypeError, IndexError):  # damaged: read the rows
            return None
        return index

    # -- look-ups ---------------------------------------------------------------------------

    def lookup(self, ref: str) -> tuple[str | None, int]:
        """Resolve one ref to ("user", position), ("group", position) or (None, -1)."""
        if ref.startswith(NAME_REF_PREFIX):
            pos = self._user_by_name.get(ref[len(NAME_REF_PREFIX):])
            return ("user", pos) if pos is not None else (None, -1)
        pos = self._user_by_ref.get(ref)
        if pos is not None:
            return "user", pos
        pos = self._group_by_ref.get(ref)
        if pos is not None:
            return "group", pos
        return None, -1

    def find_group(self, value: str, ref: str | None = None) -> int | None:
        """A group by ref (normalised DN), external id, or name (unique names only)."""
        for key, table in ((ref, self._group_by_ref), (value, self._group_by_id)):
            if key is not None and key in table:
                return table[key]
        named = self._group_by_name.get(value.casefold(), [])
        return named[0] if len(named) == 1 else None

    def group_by_external_id(self, external_id: str) -> int | None:
        """A group's position from its external id."""
        return self._group_by_id.get(external_id)

    def member_refs(self, pos: int) -> list[str]:
        """The direct member refs of a group, as the connector gave them (for the mirror)."""
        return self._listed(self.members[pos])

    def owner_refs(self, pos: int) -> list[str]:
        """The owner refs of a group."""
        return self._listed(self.owners[pos])

    def _listed(self, res: Resolved) -> list[str]:
        # users' and groups' refs by position, listed once (the mirror asks for millions)
        cached = self.__dict__.get("_ref_lists")
        if cached is None or len(cached[0]) != len(self.users) \
                or len(cached[1]) != len(self.groups):
            cached = self.__dict__["_ref_lists"] = ([u.ref for u in self.users],
                                                    [g.ref for g in self.groups])
        users, groups = cached
        return [*map(users.__getitem__, res.users), *map(groups.__getitem__, res.groups),
                *res.dangling]

    def flatten(self, pos: int, nested: bool) -> tuple[set[int], list[list[int]]]:
        """The users of a group, through nested groups when ``nested``; and cycles met.

        A cycle is reported as the list of group positions that form it.
        """
        users: set[int] = set(self.members[pos].users)
        if not nested:
            return users, []
        cycles: list[list[int]] = []
        stack: list[tuple[int, int]] = [(pos, 0)]
        path: list[int] = [pos]
        on_path = {pos}
        done: set[int] = {pos}
        while stack:
            g, i = stack[-1]
            subgroups = self.members[g].groups
            if i < len(subgroups):
                stack[-1] = (g, i + 1)
                child = subgroups[i]
                if child in on_path:
                    cycles.append(path[path.index(child):])
                    continue
                if child in done:
                    continue
                done.add(child)
                users.update(self.members[child].users)
                stack.append((child, 0))
                path.append(child)
                on_path.add(child)
            else:
                stack.pop()
                on_path.discard(path.pop())
        return users, cycles

    def nesting_cycles(self, starts: Iterable[int]) -> list[list[int]]:
        """One cycle (group positions, from the group with the lowest external id) for each
        set of groups that nest one another in a circle and are reached from ``starts``
        through nested groups.

        The answer depends on the groups alone, never on which of them a run happens to
        look at first: a full run and a delta run over one source warn of the same cycles.
        Strongly connected components (Tarjan's algorithm, without recursion) find the
        circles; within each, the shortest way back to that group, children taken in the
        order of their external ids, is the one shown.
        """
        reached: set[int] = set()
        todo = [p for p in starts if self.members[p].groups]
        while todo:
            g = todo.pop()
            if g not in reached:
                reached.add(g)
                todo.extend(self.members[g].groups)
        cycles = [self._cycle_through(min(c, key=self._stable), c)
                  for c in self._components(sorted(reached))
                  if len(c) > 1 or c[0] in self.members[c[0]].groups]
        return sorted(cycles, key=lambda cycle: self._stable(cycle[0]))

    def _stable(self, pos: int) -> str:
        """A group's external id: an order of groups that does not hang on positions (a
        delta run's index holds them in another order than a full run's)."""
        return self.groups[pos].external_id

    def _components(self, nodes: list[int]) -> list[list[int]]:
        """The strongly connected components among ``nodes`` (Tarjan, iterative)."""
        index: dict[int, int] = {}
        low: dict[int, int] = {}
        stack: list[int] = []
        on_stack: set[int] = set()
        out: list[list[int]] = []
        for root in nodes:
            if root in index:
                continue
            work = [(root, 0)]
            while work:
                g, i = work[-1]
                if i == 0:
                    index[g] = low[g] = len(index)
                    stack.append(g)
                    on_stack.add(g)
                children = self.members[g].groups
                if i < len(children):
                    work[-1] = (g, i + 1)
                    child = children[i]
                    if child not in index:
                        work.append((child, 0))
                    elif child in on_stack:
                        low[g] = min(low[g], index[child])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[g])
                if low[g] == index[g]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == g:
                            break
                    out.append(sorted(component))
        return out

    def _cycle_through(self, start: int, component: list[int]) -> list[int]:
        """The shortest cycle from ``start`` back to it inside ``component`` (breadth
        first, children in the order of their external ids)."""
        inside = set(component)
        came_from: dict[int, int] = {}
        frontier = [start]
        while frontier:
            following = []
            for g in frontier:
                for child in sorted(self.members[g].groups, key=self._stable):
                    if child == start:
                        path = [g]
                        while path[-1] != start:
                            path.append(came_from[path[-1]])
                        return path[::-1]
                    if child in inside and child not in came_from:
                        came_from[child] = g
                        following.append(child)
            frontier = following
        return [start]  # unreachable for a component with a cycle

    def direct_count(self, pos: int) -> int:
        """Direct member references that resolve to a user or a group."""
        res = self.members[pos]
        return len(res.users) + len(res.groups)
