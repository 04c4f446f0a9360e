"""Apply a plan's changes in the caller's transaction: bulk Core statements, audit rows."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from itertools import groupby, islice
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from syncd.audit import AuditWriter
from syncd.errors import StaleChange
from syncd.existing import ExistingState
from syncd.plan import (
    AddMember,
    ArchiveGroup,
    Change,
    ChangeRole,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    RemoveMember,
    RemoveMemberWithGroup,
    SetMemberStatus,
    UpdateGroup,
)
from syncd.store.bulk import hoist_columns, indexes_rebuilt, insert_rows, json_value, timestamp
from syncd.store.schema import new_ids, tables, utcnow

BATCH = 5000

GROUPS = tables["groups"]
USERS = tables["users"]
USER_IDS = tables["user_external_ids"]
MEMBERSHIPS = tables["memberships"]
AUDIENCES = tables["resource_audiences"]
AUDIT = tables["audit"]

Progress = Callable[[int], None]

USER_COLUMNS = ("id", "user_name", "email", "display_name", "external")
GROUP_COLUMNS = ("id", "name", "description", "icon", "kind", "organisation", "managed",
                 "source", "external_id", "rule", "archived", "created_at", "updated_at")
# An audit record's own columns; the others are the same for a batch's records.
AUDIT_COLUMNS = ("group_name", "user_name", "rule", "before", "after")
_USER_AFTER = '{"email": %s, "external": %s}'  # a create_user record's "after", as JSON


_key, _user, _group = attrgetter("key"), attrgetter("user"), attrgetter("group")
_role, _status, _rule = attrgetter("role"), attrgetter("status"), attrgetter("rule")


class _GroupIds(dict[str, str]):
    """Group ids by plan key: a group this apply creates has the key ``new:EXTERNAL_ID``
    and its id here; any other key is the id of a group the store holds."""

    def __missing__(self, key: str) -> str:
        if key.startswith("new:"):
            raise KeyError(key)
        return key


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), BATCH):
        yield items[i:i + BATCH]


class Applier:
    """Writes one connector's changes; ids of new groups and users are made here. Every
    statement checks that it changed exactly the rows its changes name, as the plan saw
    them; otherwise ``StaleChange`` (the caller rolls back, no record is written)."""

    def __init__(self, conn: Connection, connector: str, run_id: str, audit: AuditWriter,
                 existing: ExistingState, progress: Progress | None = None) -> None:
        self.conn = conn
        self.connector = connector
        self.run_id = run_id
        self.audit = audit
        self.actor = f"sync:{connector}"
        self.user_ids = {name: u.id for name, u in existing.users.items()}
        self.group_ids = _GroupIds()
        self._stamp: Any = None
        self._records: list[tuple[Any, ...]] = []
        # a batch's audit records as columns, where its handler built them so
        self._columns: dict[str, list[Any]] | None = None
        self._held: bool | None = None  # see _ids_held
        self._ids_written: set[str] = set()
        self.groups = existing.groups
        self.progress = progress
        self._new_user_ids: Iterator[str] = iter(())
        self._new_group_ids: Iterator[str] = iter(())
        self._deleted: set[str] = set()  # keys of the groups the plan deletes

    def _record(self, change: Change, *, group: str | None = None, user: str | None = None,
                before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                ) -> None:
        """The change's audit record, written with its batch (``AUDIT_COLUMNS``)."""
        self._records.append((group, user, getattr(change, "rule", None), json_value(before),
                              json_value(after)))

    def apply(self, changes: list[Change]) -> None:
        """Apply changes in their order, batching runs of the same op.

        A load that at least doubles the memberships or the audit table builds that table's
        indexes afresh at the end instead of row by row (``indexes_rebuilt``).

        New users and groups get random ids (``new_ids``), made for the whole run at once
        and handed out in ascending order along the plan, which creates users by name and
        groups by name and adds members by group, then user: a first sync's memberships then
        arrive in the order of their table's key (group id, user id) and are appended to its
        B-tree instead of landing at random pages, which on a large load spilled and re-read
        the page cache.
        """
        self.audit.begin(self.conn)
        kinds = Counter(map(type, changes))
        if kinds[RemoveMemberWithGroup]:
            self._deleted = {c.key for c in changes if type(c) is DeleteGroup}
        users = sum(n for cls, n in kinds.items() if issubclass(cls, CreateUser))
        self._new_user_ids = iter(sorted(new_ids(users)))
        self._new_group_ids = iter(sorted(new_ids(kinds[CreateGroup])))
        with ExitStack() as stack:
            stack.enter_context(indexes_rebuilt(self.conn, MEMBERSHIPS, kinds[AddMember]))
            stack.enter_context(indexes_rebuilt(self.conn, AUDIT, len(changes)))
            self._apply(changes)

    def _apply(self, changes: list[Change]) -> None:
        handlers: dict[type[Change], Callable[[list[Any]], None]] = {
            CreateUser: self._create_users, CreateGroup: self._create_groups,
            UpdateGroup: self._update_groups, AddMember: self._add_members,
            ChangeRole: self._change_roles, SetMemberStatus: self._set_statuses,
            RemoveMember: self._remove_members, ArchiveGroup: self._archive_groups,
            RemoveMemberWithGroup: self._remove_with_groups,
            DeleteGroup: self._delete_groups,
        }
        for cls, run in groupby(changes, key=type):
            items = list(run)
            handler = handlers.get(cls) or handlers[cls.__mro__[1]]  # InviteUser is a CreateUser
            for batch in _batches(items):
                # one timestamp for a batch: its rows' created_at and its records' ts
                self._stamp = timestamp(self.conn.dialect, datetime.now(UTC))
                self._records = []
                self._columns = None
                handler(batch)
                columns = self._columns or dict(zip(
                    AUDIT_COLUMNS, map(list, zip(*self._records, strict=True)), strict=True))
                self.audit.add_columns(self.conn, {
                    "ts": self._stamp, "run_id": self.run_id, "actor": self.actor,
                    "op": items[0].op, "source": self.connector, "extra": None,
                }, columns)
                if self.progress:
                    self.progress(len(batch))
        self.audit.flush_rows(self.conn)

    def _create_users(self, batch: list[CreateUser]) -> None:
        now = self._stamp  # the batch's time, as its audit records have it
        rows, ext, records = [], [], self._records
        for c, uid in zip(batch, islice(self._new_user_ids, len(batch)), strict=True):
            self.user_ids[c.user] = uid
            rows.append((uid, c.user, c.email, c.display_name, c.external))
            if c.external_id:
                ext.append((uid, c.external_id))
            # the record's "after" ({"email": ..., "external": ...}), encoded directly:
            # it is different for every user, so json_value's cache would only churn
            records.append((None, c.user, None, None, _USER_AFTER % (
                json.dumps(c.email, ensure_ascii=False), "true" if c.external else "false")))
        insert_rows(self.conn, USERS, USER_COLUMNS, rows, {
            "status": "active", "source": self.connector, "created_at": now,
            "updated_at": now})
        if ext:
            # A user renamed in the source (same external id, new user name) is a new user
            # here: user names are what the application knows people by. The source's id
            # moves to the new user; the old one keeps its manual memberships.
            moving = [e for _, e in ext]
            if not self._ids_held():  # only ids this apply wrote can be held
                moving = list(filter(self._ids_written.__contains__, moving))
                self._ids_written.update(e for _, e in ext)
            if moving:
                x = USER_IDS.c
                self.conn.execute(delete(USER_IDS).where(
                    x.source == self.connector, x.external_id.in_(moving)))
        insert_rows(self.conn, USER_IDS, ("user_id", "external_id"), ext,
                    {"source": self.connector})

    def _ids_held(self) -> bool:
        """Whether the store held users' external ids of this source when the apply began;
        asked once. A first sync's store holds none: only ids the apply itself wrote (a
        source that gives two users one id) can be in the way, and it keeps those."""
        if self._held is None:
            x = USER_IDS.c
            self._held = self.conn.execute(
                select(x.user_id).where(x.source == self.connector).limit(1)).first() is not None
        return self._held

    def _create_groups(self, batch: list[CreateGroup]) -> None:
        now = self._stamp  # the batch's time, as its audit records have it
        rows = []
        for c, gid in zip(batch, islice(self._new_group_ids, len(batch)), strict=True):
            self.group_ids[c.key] = gid
            a = c.attributes
            rows.append((gid, c.group, a["description"], a.get("icon"), a["kind"],
                         a["organisation"], True, self.connector, c.external_id, c.rule,
                         False, now, now))
            self._record(c, group=c.group, after={"id": gid, "external_id": c.external_id,
                                                  **a})
        insert_rows(self.conn, GROUPS, GROUP_COLUMNS, rows)

    def _update_groups(self, batch: list[UpdateGroup]) -> None:
        now = utcnow()
        # Renames may pass names between groups (a chain or a swap): first park each renamed
        # group under its own id, which no other group has as a name, then rename it. The
        # first statement of each change finds its row only as the plan saw it.
        moved = {c.key for c in batch if "name" in c.fields or "organisation" in c.fields}
        for c in batch:
            if c.key in moved:
                found = self.conn.execute(update(GROUPS).where(*self._as_planned(c))
                                          .values(name=c.key)).rowcount
                _expect(found, [c])
        for c in batch:
            values = {k: v["new"] for k, v in c.fields.items()}
            where = [GROUPS.c.id == c.key] if c.key in moved else self._as_planned(c)
            found = self.conn.execute(update(GROUPS).where(*where)
                                      .values({"name": c.group, **values, "updated_at": now})
                                      ).rowcount
            _expect(found, [c])
            self._record(c, group=c.group,
                         before={k: v["old"] for k, v in c.fields.items()}, after=values)

    def _as_planned(self, c: UpdateGroup) -> list[Any]:
        """The group row an update names, as the plan saw it: its old values, and this
        connector's unless the update adopts it."""
        g = GROUPS.c
        where = [g.id == c.key, g.name == c.group]
        where += [_equal(g[k], v["old"]) for k, v in c.fields.items()]
        if "managed" not in c.fields:
            where += [g.managed, g.source == self.connector]
        return where

    def _add_members(self, batch: list[AddMember]) -> None:
        # The hot path of a first sync (a row and a record per membership): the batch is
        # taken apart into columns by C code (attrgetter, map over dict lookups); the
        # columns that hold one value for the whole batch (its rule, mostly its role and
        # status) join the constants (on SQLite, literals of the statement), and only the
        # others are zipped into rows.
        now = self._stamp  # the batch's time, as its audit records have it
        users = list(map(_user, batch))
        roles, statuses, rules = (list(map(_role, batch)), list(map(_status, batch)),
                                  list(map(_rule, batch)))
        names, values, constants = hoist_columns({
            "group_id": list(map(self.group_ids.__getitem__, map(_key, batch))),
            "user_id": list(map(self.user_ids.__getitem__, users)),
            "role": roles, "status": statuses, "rule": rules,
        }, {"origin": "sync", "source": self.connector, "created_at": now, "updated_at": now},
            only=("role", "status", "rule"))
        # each record's "after", encoded once per (role, status) the batch holds
        if "role" in constants and "status" in constants:
            after = [json_value({"role": roles[0], "status": statuses[0]})] * len(batch)
        else:
            shapes = {(role, status): json_value({"role": role, "status": status})
                      for role, status in set(zip(roles, statuses, strict=True))}
            after = list(map(shapes.__getitem__, zip(roles, statuses, strict=True)))
        self._columns = {"group_name": list(map(_group, batch)), "user_name": users,
                         "rule": rules, "before": [None] * len(batch), "after": after}
        # In key order (the key's columns come first): rows that follow each other in the
        # table's B-tree are written together (groups and users an earlier run made have
        # random ids).
        rows = list(zip(*values, strict=True))
        rows.sort()
        insert_rows(self.conn, MEMBERSHIPS, names, rows, constants)

    def _member_update(self, batch: list[ChangeRole] | list[SetMemberStatus],
                       column: str) -> None:
        m = MEMBERSHIPS.c
        stmt = (update(MEMBERSHIPS)
                .where(m.group_id == bindparam("g"), m.user_id == bindparam("u"),
                       m[column] == bindparam("o"), m.origin == "sync",
                       m.source == self.connector)
                .values({column: bindparam("v"), "updated_at": bindparam("t"),
                         "rule": bindparam("r")}))
        now = utcnow()
        rows = []
        for c in batch:
            rows.append({"g": self.group_ids[c.key], "u": self._user_id(c), "o": c.old,
                         "v": c.new, "t": now, "r": c.rule})
            self._record(c, group=c.group, user=c.user, before={column: c.old},
                         after={column: c.new})
        _expect(self.conn.execute(stmt, rows).rowcount, batch)

    def _change_roles(self, batch: list[ChangeRole]) -> None:
        self._member_update(batch, "role")

    def _set_statuses(self, batch: list[SetMemberStatus]) -> None:
        self._member_update(batch, "status")

    def _remove_members(self, batch: list[RemoveMember]) -> None:
        m = MEMBERSHIPS.c
        stmt = delete(MEMBERSHIPS).where(m.group_id == bindparam("g"),
                                         m.user_id == bindparam("u"), m.origin == "sync",
                                         m.source == self.connector)
        rows = []
        for c in batch:
            rows.append({"g": self.group_ids[c.key], "u": self._user_id(c)})
            self._record(c, group=c.group, user=c.user)
        _expect(self.conn.execute(stmt, rows).rowcount, batch)

    def _remove_with_groups(self, batch: list[RemoveMemberWithGroup]) -> None:
        """The memberships of groups the plan deletes, whoever made them."""
        m, g = MEMBERSHIPS.c, GROUPS.c
        if any(c.key not in self._deleted for c in batch):
            raise StaleChange("a remove_member that goes with its group names a group the "
                              "plan does not delete")
        owned = select(g.id).where(g.id == bindparam("g"), g.managed,
                                   g.source == self.connector)
        stmt = delete(MEMBERSHIPS).where(m.group_id.in_(owned), m.user_id == bindparam("u"))
        rows = []
        for c in batch:
            rows.append({"g": c.key, "u": self._user_id(c)})
            self._record(c, group=c.group, user=c.user,
                         before={"role": c.role, "status": c.status, "origin": c.origin})
        _expect(self.conn.execute(stmt, rows).rowcount, batch)

    def _archive_groups(self, batch: list[ArchiveGroup]) -> None:
        now = utcnow()
        g = GROUPS.c
        for c in batch:
            found = self.conn.execute(
                update(GROUPS).where(g.id == c.key, g.managed, g.source == self.connector,
                                     g.archived.is_(False))
                .values(archived=True, updated_at=now)).rowcount
            _expect(found, [c])
            self._record(c, group=c.group, before={"archived": False},
                         after={"archived": True})

    def _delete_groups(self, batch: list[DeleteGroup]) -> None:
        g = GROUPS.c
        for c in batch:
            old = self.groups.get(c.key)
            before: dict[str, Any] = {"id": c.key}
            if old is not None:
                before.update(old.fields(), external_id=old.external_id)
            self._record(c, group=c.group, before=before)
        params = [{"gid": c.key} for c in batch]
        owned = select(g.id).where(g.id == bindparam("gid"), g.managed,
                                   g.source == self.connector)
        # Every membership went before (RemoveMemberWithGroup): one still there came in
        # after the plan was made and would go unrecorded. Audience links go with the
        # group. (ON DELETE CASCADE would take both, but an SQLite apply runs without
        # foreign-key checks, foreign_keys_unchecked.)
        left = self.conn.execute(delete(MEMBERSHIPS).where(MEMBERSHIPS.c.group_id.in_(owned)),
                                 params).rowcount
        if left:
            raise StaleChange(f"{left} membership(s) of the groups to delete are not in the "
                              "plan: the store changed since the plan was made")
        self.conn.execute(delete(AUDIENCES).where(AUDIENCES.c.group_id.in_(owned)), params)
        found = self.conn.execute(
            delete(GROUPS).where(g.id == bindparam("gid"), g.managed,
                                 g.source == self.connector), params).rowcount
        _expect(found, batch)

    def _user_id(self, c: RemoveMember | ChangeRole | SetMemberStatus) -> str:
        """The store id of the user a member change names."""
        try:
            return self.user_ids[c.user]
        except KeyError:
            raise StaleChange(f"{c.op} names user {c.user!r}, whom the store does not "
                              "have") from None


def _equal(column: Any, value: Any) -> Any:
    """``column`` holds ``value`` (NULL-safe)."""
    return column.is_(None) if value is None else column == value


def _expect(found: int, batch: list[Any]) -> None:
    """Each change of ``batch`` changed exactly one row, or none is recorded: raise
    ``StaleChange`` (the transaction rolls back)."""
    if found == len(batch):
        return
    c = batch[0]
    names = ", ".join(repr(getattr(x, "user", None) or getattr(x, "group", "")) for x in batch[:5])
    where = f" of group {c.group!r}" if hasattr(c, "user") and len(
        {x.group for x in batch}) == 1 else ""
    raise StaleChange(f"{len(batch) - found} of {len(batch)} {c.op} change(s){where} found "
                      f"nothing to change (among {names}{', ...' if len(batch) > 5 else ''})")
