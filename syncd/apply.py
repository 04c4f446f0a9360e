"""Apply a plan's changes in the caller's transaction: bulk Core statements, audit rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, update

from syncd.audit import Audit, AuditWriter
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
    SetMemberStatus,
    UpdateGroup,
)
from syncd.store.schema import new_id, tables, utcnow

BATCH = 5000

GROUPS = tables["groups"]
USERS = tables["users"]
USER_IDS = tables["user_external_ids"]
MEMBERSHIPS = tables["memberships"]

Progress = Callable[[int], None]


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), BATCH):
        yield items[i:i + BATCH]


class Applier:
    """Writes one connector's changes; ids of new groups and users are made here."""

    def __init__(self, conn: Connection, connector: str, run_id: str, audit: AuditWriter,
                 existing: ExistingState, progress: Progress | None = None) -> None:
        self.conn = conn
        self.connector = connector
        self.run_id = run_id
        self.audit = audit
        self.actor = f"sync:{connector}"
        self.user_ids = {name: u.id for name, u in existing.users.items()}
        self.group_ids: dict[str, str] = {}
        self.groups = existing.groups
        self.progress = progress

    def _gid(self, key: str) -> str:
        return self.group_ids[key] if key.startswith("new:") else key

    def _record(self, change: Change, *, group: str | None = None, user: str | None = None,
                before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                ) -> None:
        self.audit.add(self.conn, Audit(
            actor=self.actor, op=change.op, run_id=self.run_id, group=group, user=user,
            rule=getattr(change, "rule", None), source=self.connector, before=before,
            after=after))

    def apply(self, changes: list[Change]) -> None:
        """Apply changes in their order, batching runs of the same op."""
        handlers: dict[type[Change], Callable[[list[Any]], None]] = {
            CreateUser: self._create_users, CreateGroup: self._create_groups,
            UpdateGroup: self._update_groups, AddMember: self._add_members,
            ChangeRole: self._change_roles, SetMemberStatus: self._set_statuses,
            RemoveMember: self._remove_members, ArchiveGroup: self._archive_groups,
            DeleteGroup: self._delete_groups,
        }
        for cls, run in groupby(changes, key=type):
            items = list(run)
            handler = handlers.get(cls) or handlers[cls.__mro__[1]]  # InviteUser is a CreateUser
            for batch in _batches(items):
                handler(batch)
                if self.progress:
                    self.progress(len(batch))
        self.audit.flush_rows(self.conn)

    def _create_users(self, batch: list[CreateUser]) -> None:
        now = utcnow()
        rows, ext = [], []
        for c in batch:
            uid = new_id()
            self.user_ids[c.user] = uid
            rows.append({"id": uid, "user_name": c.user, "email": c.email,
                         "display_name": c.display_name, "external": c.external,
                         "status": "active", "source": self.connector, "created_at": now,
                         "updated_at": now})
            if c.external_id:
                ext.append({"user_id": uid, "source": self.connector,
                            "external_id": c.external_id})
            self._record(c, user=c.user, after={"email": c.email, "external": c.external})
        self.conn.execute(insert(USERS), rows)
        if ext:
            self.conn.execute(insert(USER_IDS), ext)

    def _create_groups(self, batch: list[CreateGroup]) -> None:
        now = utcnow()
        rows = []
        for c in batch:
            gid = new_id()
            self.group_ids[c.key] = gid
            rows.append({"id": gid, "name": c.group, "description": c.attributes["description"],
                         "icon": c.attributes.get("icon"), "kind": c.attributes["kind"],
                         "organisation": c.attributes["organisation"], "managed": True,
                         "source": self.connector, "external_id": c.external_id,
                         "rule": c.rule, "archived": False, "created_at": now,
                         "updated_at": now})
            self._record(c, group=c.group, after={"id": gid, "external_id": c.external_id,
                                                  **c.attributes})
        self.conn.execute(insert(GROUPS), rows)

    def _update_groups(self, batch: list[UpdateGroup]) -> None:
        now = utcnow()
        for c in batch:
            values = {k: v["new"] for k, v in c.fields.items()}
            self.conn.execute(update(GROUPS).where(GROUPS.c.id == c.key)
                              .values(**values, updated_at=now))
            self._record(c, group=c.group,
                         before={k: v["old"] for k, v in c.fields.items()}, after=values)

    def _add_members(self, batch: list[AddMember]) -> None:
        now = utcnow()
        rows = []
        for c in batch:
            rows.append({"group_id": self._gid(c.key), "user_id": self.user_ids[c.user],
                         "role": c.role, "status": c.status, "origin": "sync",
                         "source": self.connector, "rule": c.rule, "created_at": now,
                         "updated_at": now})
            self._record(c, group=c.group, user=c.user,
                         after={"role": c.role, "status": c.status})
        self.conn.execute(insert(MEMBERSHIPS), rows)

    def _member_update(self, batch: list[ChangeRole] | list[SetMemberStatus],
                       column: str) -> None:
        m = MEMBERSHIPS.c
        stmt = (update(MEMBERSHIPS)
                .where(m.group_id == bindparam("g"), m.user_id == bindparam("u"),
                       m.origin == "sync", m.source == self.connector)
                .values({column: bindparam("v"), "updated_at": bindparam("t"),
                         "rule": bindparam("r")}))
        now = utcnow()
        rows = []
        for c in batch:
            rows.append({"g": self._gid(c.key), "u": self.user_ids[c.user], "v": c.new,
                         "t": now, "r": c.rule})
            self._record(c, group=c.group, user=c.user, before={column: c.old},
                         after={column: c.new})
        self.conn.execute(stmt, rows)

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
            rows.append({"g": self._gid(c.key), "u": self.user_ids[c.user]})
            self._record(c, group=c.group, user=c.user)
        self.conn.execute(stmt, rows)

    def _archive_groups(self, batch: list[ArchiveGroup]) -> None:
        now = utcnow()
        for c in batch:
            self.conn.execute(update(GROUPS).where(GROUPS.c.id == c.key)
                              .values(archived=True, updated_at=now))
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
        # Memberships and audience links go with the group (ON DELETE CASCADE).
        self.conn.execute(
            delete(GROUPS).where(g.id == bindparam("gid"), g.managed,
                                 g.source == self.connector),
            [{"gid": c.key} for c in batch])
