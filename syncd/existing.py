"""The existing state: what the store holds that a connector's diff compares against.

Groups and users are loaded whole (they are few next to memberships); memberships of the
connector's groups are streamed group by group. Everything read is folded into a digest,
so that a saved plan can tell whether the store moved since it was made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby, repeat
from operator import itemgetter
from typing import Any, Final, NamedTuple

from sqlalchemy import ColumnElement, Connection, case, func, literal, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

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


# Separates the values of a group's rows in ``member_blocks``' text lists (a control
# character: ids, roles and statuses are names; a value that holds it is read as rows).
SEP: Final = "\x1f"


@dataclass(slots=True)
class MemberBlock:
    """One group's membership rows, column by column: what the diff compares.

    ``flags`` has one character a row, "1" where the row is this connector's own (the
    ``ours`` of ``StoreMember``), else "0".
    """

    group_id: str
    user_ids: list[str]
    roles: list[str]
    statuses: list[str]
    flags: str

    @property
    def ours(self) -> int:
        """How many of the rows this connector made."""
        return self.flags.count("1")

    def rows(self) -> list[StoreMember]:
        """The rows as ``StoreMember`` tuples (``M_*`` positions)."""
        return list(map(StoreMember._make, zip(
            repeat(self.group_id), self.user_ids, self.roles, self.statuses,
            map("1".__eq__, self.flags), strict=False)))

    @classmethod
    def of_rows(cls, group_id: str, rows: list[Any]) -> MemberBlock:
        """A block of rows read one by one (``memberships``)."""
        return cls(group_id, [r[M_USER_ID] for r in rows], [r[M_ROLE] for r in rows],
                   [r[M_STATUS] for r in rows], "".join("1" if r[M_OURS] else "0"
                                                        for r in rows))

    @classmethod
    def empty(cls, group_id: str) -> MemberBlock:
        """A group with no rows."""
        return cls(group_id, [], [], [], "")


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
        fold = self._hash is not None
        # Plain driver tuples; the two flags made bool (SQLite gives 0 and 1) as
        # SQLAlchemy's Boolean would, so that the digest reads the same.
        query = select(g.id, g.name, g.description, g.kind, g.organisation, g.icon, g.managed,
                       g.source, g.external_id, g.rule, g.archived)
        # in id order only for the digest: SQLite reads a table in id order through its
        # index, a row lookup each
        for raw in stream_tuples(self.conn, query.order_by(g.id) if fold else query):
            row = (*raw[:6], bool(raw[6]), *raw[7:10], bool(raw[10]))
            sg = StoreGroup(*row)
            if fold:
                self._fold(*row)
            self.groups[sg.id] = sg
            self.by_name[(sg.organisation, sg.name)] = sg
            if sg.managed and sg.source == self.connector and sg.external_id is not None:
                self.managed[sg.external_id] = sg

    def _load_users(self) -> None:
        u = USERS.c
        # Plain driver tuples (strings only): a store may hold hundreds of thousands.
        fold = self._hash is not None
        users, user_names = self.users, self.user_names
        query = select(u.user_name, u.id, u.status)
        for row in stream_tuples(self.conn, query.order_by(u.id) if fold else query):
            if fold:
                self._fold(*row)
            users[row[0]] = StoreUser(row[1], row[2])
            user_names[row[1]] = row[0]

    def _scope(self, adopt: frozenset[str], only: frozenset[str] | None,
               ) -> ColumnElement[bool]:
        m = MEMBERSHIPS.c
        scope: ColumnElement[bool]
        if only is not None:
            scope = GROUPS.c.id.in_(sorted(only | adopt))
        else:
            scope = (GROUPS.c.source == self.connector) & GROUPS.c.managed
            if adopt:
                scope = or_(scope, GROUPS.c.id.in_(sorted(adopt)))
        return m.group_id.in_(select(GROUPS.c.id).where(scope))

    def member_blocks(self, adopt: frozenset[str] = frozenset(),
                      only: frozenset[str] | None = None) -> Iterator[MemberBlock]:
        """``memberships``, as one ``MemberBlock`` a group (a group with a value holding
        ``SEP`` comes after the others).

        Without a digest to fold, the database puts each group's rows together (one row a
        group of text lists, split here in C): the diff of a re-run reads millions of rows,
        and a row of five values costs more to fetch than its share of one long text.
        """
        if self._hash is not None:
            for group_id, rows in self.memberships(adopt, only):
                yield MemberBlock.of_rows(group_id, rows)
            return
        m = MEMBERSHIPS.c
        flag = case((self._ours(), "1"), else_="0")
        if self.conn.dialect.name == "postgresql":
            def joined(column: Any, sep: str = SEP) -> Any:
                # one order for every list, so that their positions line up
                return func.string_agg(column, aggregate_order_by(literal(sep), m.user_id))
        else:
            def joined(column: Any, sep: str = SEP) -> Any:
                # SQLite feeds every aggregate of a group the same rows in the same order
                return func.group_concat(column, sep)
        query = (select(m.group_id, func.count(), joined(m.user_id), joined(m.role),
                        joined(m.status), joined(flag, ""))
                 .where(self._scope(adopt, only)).group_by(m.group_id).order_by(m.group_id))
        odd: list[str] = []  # groups with a value holding the separator
        for group_id, count, uids, roles, statuses, flags in stream_tuples(self.conn, query,
                                                                            1000):
            block = MemberBlock(group_id, uids.split(SEP), roles.split(SEP),
                                statuses.split(SEP), flags)
            if len(block.user_ids) == len(block.roles) == len(block.statuses) \
                    == len(flags) == count:
                yield block
            else:
                odd.append(group_id)
        # read row by row, in one query once the stream is done
        for group_id, rows in self.memberships(only=frozenset(odd)) if odd else ():
            yield MemberBlock.of_rows(group_id, rows)

    def _ours(self) -> ColumnElement[bool]:
        """A membership row this connector made."""
        m = MEMBERSHIPS.c
        return (m.origin == "sync") & (m.source == self.connector)

    def memberships(self, adopt: frozenset[str] = frozenset(),
                    only: frozenset[str] | None = None,
                    ) -> Iterator[tuple[str, list[StoreMember]]]:
        """(group id, member rows) for every group this connector manages and the local
        groups in ``adopt``, in group id order; with ``only``, for the groups in ``only``
        and ``adopt``. Groups with no members are not listed."""
        m = MEMBERSHIPS.c
        fold = self._hash is not None
        query = (select(m.group_id, m.user_id, m.role, m.status, self._ours().label("ours"),
                        *((m.origin, m.source, m.rule) if fold else ()))
                 .where(self._scope(adopt, only))
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
        g = GROUPS.c
        rows = self.conn.execute(
            select(g.rule, func.count()).select_from(MEMBERSHIPS.join(GROUPS))
            .where(g.source == self.connector, g.managed, self._ours())
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
