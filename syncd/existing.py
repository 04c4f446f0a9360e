"""The existing state: what the store holds that a connector's diff compares against.

Groups and users are loaded whole (they are few next to memberships); memberships of the
connector's groups are streamed group by group. Everything read is folded into a digest,
so that a saved plan can tell whether the store moved since it was made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import Connection, or_, select

from syncd.store.schema import tables

GROUPS = tables["groups"]
USERS = tables["users"]
MEMBERSHIPS = tables["memberships"]


@dataclass(slots=True)
class StoreGroup:
    """A group row, as the diff needs it."""

    id: str
    name: str
    description: str
    kind: str
    organisation: str
    icon: str | None
    managed: bool
    source: str | None
    external_id: str | None
    rule: str | None
    archived: bool

    def fields(self) -> dict[str, object]:
        """The fields a rule sets, to compare with the desired group."""
        return {"name": self.name, "description": self.description, "kind": self.kind,
                "organisation": self.organisation, "icon": self.icon}


@dataclass(slots=True)
class StoreMember:
    """A membership row with its user's name."""

    user: str
    user_id: str
    role: str
    status: str
    origin: str
    source: str | None
    rule: str | None

    def ours(self, connector: str) -> bool:
        """Written by this connector's sync (so sync may change or remove it)."""
        return self.origin == "sync" and self.source == connector


@dataclass(slots=True)
class StoreUser:
    """A user row, as the diff needs it."""

    id: str
    status: str


class ExistingState:
    """The store as one connector's diff sees it."""

    def __init__(self, conn: Connection, connector: str) -> None:
        self.conn = conn
        self.connector = connector
        self._hash = hashlib.sha256()
        self.groups: dict[str, StoreGroup] = {}
        self.by_name: dict[tuple[str, str], StoreGroup] = {}
        self.managed: dict[str, StoreGroup] = {}
        self.users: dict[str, StoreUser] = {}
        self._load_groups()
        self._load_users()

    def _fold(self, *values: object) -> None:
        self._hash.update(repr(values).encode("utf-8"))

    def _load_groups(self) -> None:
        g = GROUPS.c
        rows = self.conn.execute(select(
            g.id, g.name, g.description, g.kind, g.organisation, g.icon, g.managed, g.source,
            g.external_id, g.rule, g.archived).order_by(g.id))
        for row in rows:
            sg = StoreGroup(*row)
            self._fold(*row)
            self.groups[sg.id] = sg
            self.by_name[(sg.organisation, sg.name)] = sg
            if sg.managed and sg.source == self.connector and sg.external_id is not None:
                self.managed[sg.external_id] = sg

    def _load_users(self) -> None:
        u = USERS.c
        for row in self.conn.execute(select(u.user_name, u.id, u.status).order_by(u.id)):
            self._fold(*row)
            self.users[row[0]] = StoreUser(row[1], row[2])

    def memberships(self) -> Iterator[tuple[str, list[StoreMember]]]:
        """(group id, members) for every group this connector manages, or that a rule may
        adopt, in group id order. Groups with no members are not listed."""
        m, u = MEMBERSHIPS.c, USERS.c
        group_ids = select(GROUPS.c.id).where(or_(
            (GROUPS.c.source == self.connector) & GROUPS.c.managed,
            ~GROUPS.c.managed,
        ))
        query = (select(m.group_id, u.user_name, m.user_id, m.role, m.status, m.origin,
                        m.source, m.rule)
                 .join(USERS, u.id == m.user_id)
                 .where(m.group_id.in_(group_ids))
                 .order_by(m.group_id, m.user_id))
        # Statement-level option: on a Connection, execution_options() would stick.
        rows = self.conn.execute(query.execution_options(yield_per=5000))
        for group_id, items in groupby(rows, key=lambda r: r[0]):
            members = []
            for row in items:
                self._fold(*row)
                members.append(StoreMember(*row[1:]))
            yield group_id, members

    def digest(self) -> str:
        """The digest of everything read so far (read all memberships first)."""
        return "sha256:" + self._hash.hexdigest()


def state_digest(conn: Connection, connector: str) -> str:
    """The digest a plan for ``connector`` would record against the store as it is now."""
    state = ExistingState(conn, connector)
    for _ in state.memberships():
        pass
    return state.digest()
