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
from operator import itemgetter
from typing import Any, Final, NamedTuple

from sqlalchemy import ColumnElement, Connection, func, or_, select

from syncd.store.bulk import stream_tuples
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


# Positions in a membership row (``StoreMember``): the diff reads the driver's tuples as
# they come, without making an object per row.
M_USER_ID: Final = 1
M_ROLE: Final = 2
M_STATUS: Final = 3
M_OURS: Final = 4


class StoreMember(NamedTuple):
    """A membership row as ``ExistingState.memberships`` yields it: a plain tuple in this
    field order (the names document it; rows are not converted, use the M_* positions).

    ``ours`` is true for a membership this connector made (origin ``sync``, its source):
    the database compares, so that a row is five values rather than seven strings. A state
    loaded with a digest reads ``origin``, ``source`` and ``rule`` too, after these five.
    """

    group_id: str
    user_id: str
    role: str
    status: str
    ours: bool


@dataclass(slots=True)
class StoreUser:
    """A user row, as the diff needs it."""

    id: str
    status: str


class ExistingState:
    """The store as one connector's diff sees it."""

    def __init__(self, conn: Connection, connector: str, digest: bool = False) -> None:
        self.conn = conn
        self.connector = connector
        self._hash = hashlib.sha256() if digest else None
        self.groups: dict[str, StoreGroup] = {}
        self.by_name: dict[tuple[str, str], StoreGroup] = {}
        self.managed: dict[str, StoreGroup] = {}
        self.users: dict[str, StoreUser] = {}
        self.user_names: dict[str, str] = {}
        self._load_groups()
        self._load_users()

    def _fold(self, *values: object) -> None:
        if self._hash is not None:
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
        # Plain driver tuples (strings only): a store may hold hundreds of thousands.
        for row in stream_tuples(self.conn, select(u.user_name, u.id, u.status)
                                 .order_by(u.id)):
            self._fold(*row)
            self.users[row[0]] = StoreUser(row[1], row[2])
            self.user_names[row[1]] = row[0]

    def memberships(self, adopt: frozenset[str] = frozenset(),
                    only: frozenset[str] | None = None,
                    ) -> Iterator[tuple[str, list[StoreMember]]]:
        """(group id, member rows) for every group this connector manages and the local
        groups in ``adopt``, in group id order; with ``only``, for the groups in ``only``
        and ``adopt``. Groups with no members are not listed."""
        m = MEMBERSHIPS.c
        scope: ColumnElement[bool]
        if only is not None:
            scope = GROUPS.c.id.in_(sorted(only | adopt))
        else:
            scope = (GROUPS.c.source == self.connector) & GROUPS.c.managed
            if adopt:
                scope = or_(scope, GROUPS.c.id.in_(sorted(adopt)))
        fold = self._hash is not None
        ours = ((m.origin == "sync") & (m.source == self.connector)).label("ours")
        query = (select(m.group_id, m.user_id, m.role, m.status, ours,
                        *((m.origin, m.source, m.rule) if fold else ()))
                 .where(m.group_id.in_(select(GROUPS.c.id).where(scope)))
                 .order_by(m.group_id, m.user_id))
        for group_id, items in groupby(stream_tuples(self.conn, query), key=itemgetter(0)):
            members: list[Any] = list(items)
            # The digest covers the connector's own groups, not those a rule may adopt, so
            # that `syncd apply` (which adopts nothing new) computes the same one.
            if fold and group_id not in adopt:
                for row in members:
                    self._fold(*row[:4], *row[5:])
            yield group_id, members

    def member_counts(self) -> dict[str, int]:
        """Rule name ("" for none) -> memberships this connector made in the groups it
        manages, counted by the database."""
        m, g = MEMBERSHIPS.c, GROUPS.c
        rows = self.conn.execute(
            select(g.rule, func.count()).select_from(MEMBERSHIPS.join(GROUPS))
            .where(g.source == self.connector, g.managed, m.origin == "sync",
                   m.source == self.connector)
            .group_by(g.rule))
        counts: dict[str, int] = {}
        for rule, count in rows:
            counts[rule or ""] = counts.get(rule or "", 0) + count
        return counts

    def digest(self) -> str:
        """The digest of everything read so far (read all memberships first); empty when
        the state was loaded without one."""
        return "sha256:" + self._hash.hexdigest() if self._hash is not None else ""


def state_digest(conn: Connection, connector: str) -> str:
    """The digest a plan for ``connector`` would record against the store as it is now."""
    state = ExistingState(conn, connector, digest=True)
    for _ in state.memberships():
        pass
    return state.digest()
