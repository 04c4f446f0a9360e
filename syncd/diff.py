"""The diff: desired groups and members (from rules) against the existing store state.

Only what this connector manages is compared; a group or membership written by hand or by
another connector is never changed (ownership, CONTRACT section 3). Name collisions are
warnings and the colliding group is left as it is.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, filterfalse, repeat
from operator import countOf, is_not, itemgetter, not_

from syncd.config.rules import Rule
from syncd.existing import (
    M_OURS,
    M_ROLE,
    M_STATUS,
    M_USER_ID,
    ExistingState,
    MemberBlock,
    StoreGroup,
)
from syncd.index import SourceIndex
from syncd.mirror import Touched
from syncd.plan import (
    AddMember,
    ArchiveGroup,
    Change,
    ChangeRole,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    InviteUser,
    RemoveMember,
    RemoveMemberWithGroup,
    SetMemberStatus,
    UpdateGroup,
)
from syncd.rules import DesiredGroup, MemberResolver, Warning, summarise_dangling
from syncd.store.names import EMAIL_MAX, NAME_MAX, control_problem, name_problem, shown

# A membership status sync set itself, and sets back to accepted when the user is enabled
# again; any other status (invited, pending, left, ...) belongs to the application.
RESTORED = ("deactivated",)
# A delta run that reaches more groups than this compares them all (one read of the table).
MAX_COMPARED = 5000
DISPLAY_NAME_MAX = 255  # the users table's column


@dataclass
class DiffResult:
    """Changes, warnings, and what the connector manages now (for percentage limits)."""

    changes: list[Change] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    managed_groups: int = 0
    managed_members: int = 0
    # rule name -> (groups, memberships) it manages now
    managed_by_rule: dict[str, tuple[int, int]] = field(default_factory=dict)
    # False when the membership counts were left out: a delta run that plans no member
    # removal, or has no percentage limit on them (the one check that reads the counts),
    # does not count the groups it did not read
    members_counted: bool = True


def _name_problem(value: str) -> str | None:
    """``name_problem``, with the common case (printable, short, trimmed) decided in C: the
    diff asks it of every source user and desired group."""
    if value.isprintable() and 0 < len(value) <= NAME_MAX and value.strip() == value:
        return None
    return name_problem(value)


def _fits(value: str | None, limit: int) -> bool:
    """Whether an optional attribute of a new user can be stored as it is: at most ``limit``
    characters, no control characters."""
    return value is None or (len(value) <= limit and (
        value.isprintable() or control_problem(value) is None))


def _fresh(text: str) -> str:
    """A new string equal to ``text`` (slicing a longer one makes a new object)."""
    return (text + " ")[:-1]


class Differ:
    """Compares one connector's desired state with the store."""

    def __init__(self, connector: str, index: SourceIndex, rules: list[Rule],
                 resolver: MemberResolver, existing: ExistingState) -> None:
        self.connector = connector
        self.index = index
        self.rules = {r.name: r for r in rules}
        self.resolver = resolver
        self.existing = existing
        self.result = DiffResult(warnings=resolver.warnings)
        self._new_users: dict[str, CreateUser] = {}
        self._created: set[str] = set()
        # one byte a source user, 1 where there is nothing left to note: its user name is in
        # _created, or it is disabled (never created); the first sync's check of millions
        # of members, made without touching the names
        self._settled_pos = bytearray(u.disabled for u in index.users)
        # Members who are users unknown to the store, a group's at a time (group, source
        # positions and user names of the users, roles, rule, key): added once every group
        # is seen, if a rule creates or invites the user.
        self._unknown: list[tuple[str, Sequence[int], list[str], list[str], str, str]] = []
        self._by_rule_groups: dict[str, int] = defaultdict(int)
        self._by_rule_members: dict[str, int] = defaultdict(int)
        self._deleting: dict[str, StoreGroup] = {}  # groups the plan deletes, by id
        self._bad_names: dict[int, str] = {}  # source users the store would refuse: problem
        self._trimmed: set[str] = set()  # new users made without an email or display name

    # -- groups -----------------------------------------------------------------------------

    def _conflict(self, d: DesiredGroup, why: str) -> None:
        self.result.warnings.append(Warning(
            "name_conflict",
            f"source group {self.index.groups[d.pos].dn!r} maps to {d.name!r} "
            f"(organisation {d.organisation!r}), {why}; it is skipped"))

    def _place(self, desired: list[DesiredGroup]) -> dict[str, tuple[DesiredGroup, str]]:
        """Decide each desired group's store group: key -> (desired, store id or new:ID)."""
        by_target: dict[tuple[str, str], list[DesiredGroup]] = defaultdict(list)
        for d in desired:
            refused = self._refused(d)
            if refused:
                self.result.warnings.append(Warning("invalid_name", (
                    f"source group {self.index.groups[d.pos].dn!r} maps to {refused}; it is "
                    "skipped")))
                continue
            by_target[(d.organisation, d.name)].append(d)
        placed: dict[str, tuple[DesiredGroup, str]] = {}
        # Claims on names held by other groups of this connector: granted when the plan
        # renames or deletes the holder (see _free_names).
        waiting: dict[str, tuple[DesiredGroup, str, StoreGroup]] = {}
        for target, claimants in by_target.items():
            holder = self.existing.by_name.get(target)
            if len(claimants) > 1:
                keep = [d for d in claimants if holder is not None and holder.managed
                        and holder.source == self.connector
                        and holder.external_id == d.external_id]
                for d in claimants:
                    if d not in keep:
                        # sorted: the source's order differs between full and delta runs
                        others = ", ".join(sorted(repr(self.index.groups[o.pos].dn)
                                                  for o in claimants if o is not d))
                        self._conflict(d, f"as do other source groups ({others})")
                if not keep:
                    continue
                d = keep[0]
            else:
                d = claimants[0]
            mine = self.existing.managed.get(d.external_id)
            key = mine.id if mine else f"new:{d.external_id}"
            if holder is None or holder is mine:
                placed[d.external_id] = (d, key)
            elif holder.managed and holder.source == self.connector:
                waiting[d.external_id] = (d, key, holder)
            elif holder.managed:
                self._conflict(d, f"a name held by a group synced from {holder.source!r}")
            elif d.rule.adopt_existing and mine is None:
                placed[d.external_id] = (d, holder.id)
            else:
                self._conflict(d, "a name held by a local group (set adopt_existing to take "
                               "it over)")
        self._free_names(placed, waiting, {d.external_id for d in desired})
        return placed

    @staticmethod
    def _refused(d: DesiredGroup) -> str | None:
        """Why the store would refuse a desired group's name (None if it would not): the
        rule of the admin commands (``syncd.store.names``), for sync too. (A rule's
        organisation is checked with the config.)"""
        problem = _name_problem(d.name)
        return f"the name {shown(d.name)}, which {problem}" if problem else None

    def _free_names(self, placed: dict[str, tuple[DesiredGroup, str]],
                    waiting: dict[str, tuple[DesiredGroup, str, StoreGroup]],
                    wanted: set[str]) -> None:
        """Grant the waiting claims whose holder this plan deletes or renames away.

        Renames may chain or swap names, so every claim is first assumed granted and those
        whose holder keeps its name are withdrawn until none changes. The apply order
        (deletes, then renames in two steps, then creates) lets the names pass on in one run.
        """
        changed = True
        while changed:
            changed = False
            for ext, (d, _key, holder) in list(waiting.items()):
                held_by = holder.external_id
                if held_by is not None and held_by in wanted:
                    moves = held_by in placed or held_by in waiting
                else:
                    moves = (held_by is not None
                             and self.existing.managed.get(held_by) is holder
                             and self._policy(holder) == "delete")
                if not moves:
                    del waiting[ext]
                    changed = True
                    self._conflict(d, f"a name held by another group synced from "
                                   f"{self.connector!r} ({held_by})")
        for ext, (d, key, _holder) in waiting.items():
            placed[ext] = (d, key)

    def _group_changes(self, d: DesiredGroup, key: str) -> None:
        attrs = {"description": d.description, "kind": d.kind, "organisation": d.organisation}
        if d.icon is not None:
            attrs["icon"] = d.icon
        if key.startswith("new:"):
            self.result.changes.append(CreateGroup(
                group=d.name, source=self.connector, external_id=d.external_id,
                rule=d.rule.name, attributes=attrs, key=key))
            return
        current = self.existing.groups[key]
        want: dict[str, object] = {"name": d.name, **attrs, "icon": d.icon}
        have = current.fields()
        fields = {k: {"old": have[k], "new": v} for k, v in want.items() if have[k] != v}
        if not current.managed:  # adopted
            fields.update({
                "managed": {"old": False, "new": True},
                "source": {"old": current.source, "new": self.connector},
                "external_id": {"old": current.external_id, "new": d.external_id},
            })
        if current.archived:
            fields["archived"] = {"old": True, "new": False}
        if current.rule != d.rule.name:
            fields["rule"] = {"old": current.rule, "new": d.rule.name}
        if fields:
            self.result.changes.append(UpdateGroup(
                group=current.name, source=self.connector, rule=d.rule.name, fields=fields,
                key=key))

    def _policy(self, g: StoreGroup) -> str:
        """What happens to a managed group gone from the source: its rule's on_source_delete."""
        rule = self.rules.get(g.rule or "")
        return rule.on_source_delete if rule else "delete"

    def _gone(self, g: StoreGroup) -> None:
        """A managed group no longer desired: its rule's on_source_delete decides."""
        policy = self._policy(g)
        rule_name = g.rule or ""
        if policy == "delete":
            self.result.changes.append(DeleteGroup(group=g.name, source=self.connector,
                                                   rule=rule_name, key=g.id))
            self._deleting[g.id] = g
        elif policy == "archive" and not g.archived:
            self.result.changes.append(ArchiveGroup(group=g.name, source=self.connector,
                                                    rule=rule_name, key=g.id))

    # -- members ----------------------------------------------------------------------------

    def _all_added(self, d: DesiredGroup, want: dict[int, str], key: str, group_name: str,
                   remove_disabled: bool) -> bool:
        """A group without rows (new, or empty in the store): every desired member is added.

        The loop of ``_members`` for this case, in C where it can be: a first sync adds
        millions of members this way. Returns False, doing nothing, where two desired
        users share a name or some are in the store and some not (``_members`` decides).
        """
        # positions as machine ints: the passes below read them over and over, and the int
        # objects of the dict lie scattered in memory
        positions = array("i", want)
        roles = list(want.values())
        if remove_disabled and self._disabled_pos \
                and not self._disabled_pos.isdisjoint(positions):
            positions = array("i", filterfalse(self._disabled_pos.__contains__, positions))
            roles = list(map(want.__getitem__, positions))
        if not positions:
            return True
        names = list(map(self._name_of.__getitem__, positions))
        if self._names_shared and len(set(names)) != len(names):
            return False
        n, rname = len(names), d.rule.name
        store_users = self.existing.users
        stored = countOf(map(store_users.__contains__, names), True) if store_users else 0
        if stored == n:
            self.result.changes.extend(map(
                AddMember, repeat(group_name, n), names, roles,
                map(self._status_of.__getitem__, positions), repeat(rname, n), repeat(key, n)))
            return True
        if stored:
            return False
        # the users no earlier group has created (names are distinct within the group, so
        # what this loop creates cannot be met again in it); a user whose name another
        # user created is noted again, which changes nothing
        rule = d.rule
        for pos in compress(positions, map(not_, map(self._settled_pos.__getitem__,
                                                     positions))):
            self._note_unknown(pos, rule)
        self._unknown.append((group_name, positions, names, roles, rname, key))
        return True

    def _note_unknown(self, pos: int, rule: Rule) -> None:
        """A user not in the store, reached by ``rule``: plan its creation as the rule says.

        Order-independent: a user that any rule creates is created, and invited only where
        every rule that reaches it invites. Its memberships are added at the end of the diff
        (``_unknown``), ``invited`` for an invited user and ``accepted`` for a created one,
        as they would be had the user been in the store already.
        """
        su = self.index.users[pos]
        policy = rule.members.unknown_users
        if policy == "skip" or su.disabled:
            return
        if pos in self._bad_names:
            return  # never created (warned about once, in run)
        made = self._new_users.get(su.user_name)
        if made is None or (policy == "create" and isinstance(made, InviteUser)):
            cls = InviteUser if policy == "invite" else CreateUser
            email = su.email if _fits(su.email, EMAIL_MAX) else None
            display_name = (su.display_name if _fits(su.display_name, DISPLAY_NAME_MAX)
                            else None)
            if (email, display_name) != (su.email, su.display_name):
                self._trimmed.add(su.user_name)
            self._new_users[su.user_name] = cls(
                su.user_name, email, su.external, self.connector, display_name,
                su.external_id)
            if cls is CreateUser:
                self._created.add(su.user_name)  # final: nothing turns it back
                self._settled_pos[pos] = 1

    def _unchanged(self, want: dict[int, str], existing: MemberBlock,
                   remove_disabled: bool) -> bool:
        """The common case, checked fast: every desired user is in the store, the rows are
        exactly ours with the desired roles, and no status is to change (deactivated for
        a disabled user, anything but deactivated for the others).

        Hot: it sees every membership of a re-run. Each step is one pass of C code over
        the group (map, dict and set operations), not Python code per member.
        """
        if self._unknown_pos and not self._unknown_pos.isdisjoint(want):
            return False  # a user the store does not have yet (early: no row would match)
        uids = (itemgetter(*want)(self._uid_of) if len(want) > 1
                else tuple(map(self._uid_of.__getitem__, want)))
        desired = dict(zip(uids, want.values(), strict=True))
        blank = 0
        if "" in desired:  # disabled users the store does not have: never members
            del desired[""]
            blank = countOf(uids, "")
        if len(desired) != len(uids) - blank:  # two source users, one store user
            return False
        # As many rows as desired users, each row's user desired with the row's role: the
        # same pairs (a group's rows have distinct users)
        if len(existing.user_ids) != len(desired) or "0" in existing.flags \
                or list(map(desired.get, existing.user_ids)) != existing.roles:
            return False
        disabled = self._disabled_uids.intersection(desired)
        if disabled and remove_disabled:
            return False
        # Disabled users' rows are deactivated, and no other row has a status that an
        # enabled user is restored from: as RESTORED holds "deactivated", that is as many
        # rows in RESTORED as there are disabled users, each of them deactivated.
        statuses = existing.statuses
        if sum(countOf(statuses, s) for s in RESTORED) != len(disabled):
            return False
        if not disabled:
            return True
        status_of = dict(zip(existing.user_ids, statuses, strict=True))
        return all(status_of[uid] == "deactivated" for uid in disabled)

    def _members(self, d: DesiredGroup, key: str, group_name: str,
                 block: MemberBlock) -> None:
        """Compare one group's desired members with its rows (hot: millions of members)."""
        want = self.resolver.members(d)
        rule = d.rule
        remove_disabled = rule.members.disabled_users == "remove"
        if self._unchanged(want, block, remove_disabled):
            return
        if not block.user_ids and self._all_added(d, want, key, group_name, remove_disabled):
            return
        existing = block.rows()
        rname = rule.name
        users = self.index.users
        store_users = self.existing.users
        created = self._created
        changes = self.result.changes
        have = {m[M_USER_ID]: m for m in existing}
        unknown_pos: list[int] = []
        unknown_names: list[str] = []
        unknown_roles: list[str] = []
        kept: set[str] = set()
        seen: set[str] = set()
        for pos, role in want.items():
            su = users[pos]
            name = su.user_name
            disabled = su.disabled
            if name in seen or (disabled and remove_disabled):
                continue
            seen.add(name)
            stored = store_users.get(name)
            current = have.get(stored.id) if stored is not None else None
            if current is None:
                if stored is not None:
                    changes.append(AddMember(group_name, name, role,
                                             "deactivated" if disabled else "accepted", rname,
                                             key))
                else:
                    if name not in created:
                        self._note_unknown(pos, rule)
                    unknown_pos.append(pos)
                    unknown_names.append(name)
                    unknown_roles.append(role)
                continue
            kept.add(current[M_USER_ID])
            if not current[M_OURS]:
                continue  # a manual or foreign membership: never ours to change
            if current[M_ROLE] != role:
                changes.append(ChangeRole(group_name, name, current[M_ROLE], role, rname, key))
            old = current[M_STATUS]
            new = "deactivated" if disabled else ("accepted" if old in RESTORED else old)
            if old != new:
                changes.append(SetMemberStatus(group_name, name, old, new, rname, key))
        for m in existing:
            if m[M_USER_ID] not in kept and m[M_OURS]:
                changes.append(RemoveMember(group_name, self.existing.user_names[m[M_USER_ID]],
                                            rname, key))
        if unknown_names:
            self._unknown.append((group_name, unknown_pos, unknown_names, unknown_roles, rname,
                                  key))

    def _removed_with_group(self, g: StoreGroup, block: MemberBlock) -> None:
        """Every membership of a group the plan deletes goes with it, and is planned (and
        audited) as a removal: a manual one too. A row this connector did not make is a
        manual one (no other connector syncs into its groups)."""
        names = self.existing.user_names
        rule = g.rule or ""
        self.result.changes.extend(
            RemoveMemberWithGroup(g.name, names[uid], rule, g.id, role, status,
                                  "sync" if flag == "1" else "manual")
            for uid, role, status, flag in zip(block.user_ids, block.roles, block.statuses,
                                               block.flags, strict=True))

    # -- a delta's reach --------------------------------------------------------------------

    def _affected(self, desired: list[DesiredGroup], touched: Touched) -> set[int] | None:
        """Source positions of the groups whose desired members a delta may have changed, or
        None when that cannot be told from the snapshot (compare every group).

        A group is affected when the delta changed it, when one of its members or owners
        (direct, or a DN in a role attribute) is a user the delta changed, when a reference
        of it resolves to nothing (a user or group the delta removed is such a reference
        now), and when it contains, nests or takes a role from an affected group. Roles
        taken from one named group (``roles: {x: {group: ...}}``) reach every group of
        their rule, so such rules compare everything.
        """
        if any(src.group for r in self.rules.values() for src in r.roles.values()):
            return None
        index = self.index
        users = {pos for pos, u in enumerate(index.users) if u.external_id in touched.users}
        seeds: set[int] = set()
        for ext in touched.groups:
            pos = index.group_by_external_id(ext)
            if pos is not None:
                seeds.add(pos)
        parents: dict[int, list[int]] = defaultdict(list)
        for pos, (m, o) in enumerate(zip(index.members, index.owners, strict=True)):
            if m.dangling or o.dangling or (users and not (
                    users.isdisjoint(m.users) and users.isdisjoint(o.users))):
                seeds.add(pos)
            for child in (*m.groups, *o.groups):
                parents[child].append(pos)
        normalise = self.resolver.normalise
        for d in desired:
            attributes = index.groups[d.pos].attributes
            for source in d.rule.roles.values():
                for value in attributes.get((source.attribute or "").lower(), []):
                    try:
                        kind, hit = index.lookup(normalise(value))
                    except ValueError:
                        kind, hit = None, -1
                    if kind is None or (kind == "user" and hit in users):
                        seeds.add(d.pos)
                    elif kind == "group":
                        parents[hit].append(d.pos)
        affected = set(seeds)
        stack = list(seeds)
        while stack:
            for parent in parents.get(stack.pop(), ()):
                if parent not in affected:
                    affected.add(parent)
                    stack.append(parent)
        return affected

    # -- the whole diff ---------------------------------------------------------------------

    def run(self, desired: list[DesiredGroup], touched: Touched | None = None, *,
            share_limits: bool = True) -> DiffResult:
        """Compute every change; reads the existing memberships stream to its end.

        With ``touched`` (a delta run whose mirror the same rules made), only the members
        of the groups the delta can have moved are compared (``_affected``), and of new and
        adopted groups; the others are as the last sync left them. Changes made in the
        store since then by hand are put right by the next full run. Such a run counts the
        memberships of the groups it did not read only when ``share_limits`` says that a
        limit on member removals is a percentage (which needs them).
        """
        store_users = self.existing.users
        # Each source user's store id (None where unknown to the store), and the store ids
        # of users the source has disabled: what the fast check of unchanged groups needs.
        # ("" for a disabled user the store does not have: no rule creates one, so such
        # a user is never a member, and the fast check may leave it out.)
        self._uid_of: list[str | None] = [
            store_users[u.user_name].id if u.user_name in store_users
            else ("" if u.disabled else None) for u in self.index.users]
        self._unknown_pos = {pos for pos, uid in enumerate(self._uid_of) if uid is None}
        # The user names as fresh copies, made one after another: the member changes of a
        # first sync touch millions of them, and side by side in memory they stay in the
        # caches (the source's own strings lie scattered among everything read with them;
        # on 2M memberships the copies take a tenth off planning).
        self._name_of = [_fresh(u.user_name) for u in self.index.users]
        # whether two source users share a user name (then a group's may clash)
        self._names_shared = len(set(self._name_of)) != len(self._name_of)
        self._disabled_pos = {pos for pos, u in enumerate(self.index.users) if u.disabled}
        for pos, name in enumerate(self._name_of):
            problem = _name_problem(name)
            if problem and name not in store_users:
                self._bad_names[pos] = problem
        # the status a membership is added with, for a user in the store
        self._status_of = ["deactivated" if u.disabled else "accepted"
                           for u in self.index.users]
        self._disabled_uids = {uid for u, uid in zip(self.index.users, self._uid_of, strict=True)
                               if u.disabled and uid}
        placed = self._place(desired)
        by_key = {key: d for d, key in placed.values()}
        skipped = {d.external_id for d in desired} - set(placed)
        for d, key in placed.values():
            self._group_changes(d, key)
        for g in self.existing.managed.values():
            self._by_rule_groups[g.rule or ""] += 1
            if g.external_id not in placed and g.external_id not in skipped:
                self._gone(g)
        dangling: list[tuple[str, list[str]]] = []
        visited: set[str] = set()
        managed_members = 0
        adopt = frozenset(key for key in by_key
                          if not key.startswith("new:") and not self.existing.groups[key].managed)
        compare = self._compared(by_key, desired, touched)
        if compare is not None:
            compare |= frozenset(self._deleting)
        for block in self.existing.member_blocks(adopt, compare):
            group_id = block.group_id
            g = self.existing.groups[group_id]
            mine = g.managed and g.source == self.connector
            if compare is None or not mine:
                ours = block.ours
                managed_members += ours
                if mine:
                    self._by_rule_members[g.rule or ""] += ours
            wanted = by_key.get(group_id)
            if wanted is None:
                if group_id in self._deleting:
                    self._removed_with_group(self._deleting[group_id], block)
                continue
            visited.add(group_id)
            self._members(wanted, group_id, self._group_name(group_id, wanted), block)
        for key, d in by_key.items():
            if key not in visited and (compare is None or key in compare or key in adopt
                                       or key.startswith("new:")):
                self._members(d, key, self._group_name(key, d), MemberBlock.empty(key))
        self.result.changes.extend(self._new_users.values())
        # whether a user is created does not hang on group order: their memberships last
        status_of = {name: "invited" if isinstance(made, InviteUser) else "accepted"
                     for name, made in self._new_users.items()}
        # by source position: a list read in order of position is kinder to the memory
        # caches than millions of lookups of names
        status_at = list(map(status_of.get, self._name_of))
        changes = self.result.changes
        for group_name, positions, all_names, all_roles, rname, key in self._unknown:
            statuses = list(map(status_at.__getitem__, positions))
            names, roles = all_names, all_roles
            if None in statuses:  # no membership for a user that no rule creates
                keep = list(map(is_not, statuses, repeat(None)))
                names, roles = list(compress(names, keep)), list(compress(roles, keep))
                statuses = list(compress(statuses, keep))
            n = len(names)
            changes.extend(map(AddMember, repeat(group_name, n), names, roles, statuses,
                               repeat(rname, n), repeat(key, n)))
        for d in by_key.values():
            refs = self.resolver.dangling(d)
            if refs:
                dangling.append((d.name, refs))
        self.result.warnings.extend(self.resolver.cycle_warnings(by_key.values()))
        self.result.warnings.extend(summarise_dangling(dangling))
        unresolved = [(d.name, self.resolver.unresolved_roles[d.pos]) for d in by_key.values()
                      if d.pos in self.resolver.unresolved_roles]
        self.result.warnings.extend(summarise_dangling(
            unresolved, code="dangling_role", what="role value(s) (e.g. owner DNs)"))
        self.result.warnings.extend(self._user_warnings())
        if compare is not None:
            # The memberships of groups not read, counted by the database; only a
            # percentage limit on member removals uses the counts, so a delta that removes
            # none, or has no such limit, skips it.
            if share_limits and any(type(c) is RemoveMember for c in self.result.changes):
                for rule_name, count in self.existing.member_counts().items():
                    self._by_rule_members[rule_name] += count
                    managed_members += count
            else:
                self.result.members_counted = False
        self.result.managed_groups = len(self.existing.managed)
        self.result.managed_members = managed_members
        self.result.managed_by_rule = {
            r: (self._by_rule_groups.get(r, 0), self._by_rule_members.get(r, 0))
            for r in set(self._by_rule_groups) | set(self._by_rule_members)}
        return self.result

    def _user_warnings(self) -> list[Warning]:
        """One warning for the source users never created for their names, one for those
        created without an email or display name the store cannot hold."""
        out = []
        if self._bad_names:
            first = [f"{shown(self._name_of[pos])} {problem}"
                     for pos, problem in list(self._bad_names.items())[:3]]
            out.append(Warning("invalid_user_name", (
                f"{len(self._bad_names)} source user(s) have a user name the store refuses "
                f"and are not created: {'; '.join(first)}")))
        if self._trimmed:
            names = sorted(self._trimmed)
            out.append(Warning("invalid_user_attribute", (
                f"{len(names)} new user(s) have an email longer than {EMAIL_MAX} or a display "
                f"name longer than {DISPLAY_NAME_MAX} characters, or one with control "
                f"characters, and are created without it: {', '.join(map(shown, names[:3]))}"
            )))
        return out

    def _compared(self, by_key: dict[str, DesiredGroup], desired: list[DesiredGroup],
                  touched: Touched | None) -> frozenset[str] | None:
        """The store groups (ids) whose members a delta run compares, or None for all."""
        if touched is None:
            return None
        affected = self._affected(desired, touched)
        if affected is None:
            return None
        compare = frozenset(key for key, d in by_key.items()
                            if d.pos in affected and not key.startswith("new:"))
        # a long list of ids is better read as the whole table
        return compare if len(compare) <= MAX_COMPARED else None

    def _group_name(self, key: str, d: DesiredGroup) -> str:
        """The name member changes carry: the group's name before this plan's rename."""
        g = self.existing.groups.get(key)
        return g.name if g is not None else d.name
