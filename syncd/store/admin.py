"""The admin operations behind ``syncd groups|members|users``: ORM work with audit records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd.audit import Audit, AuditWriter
from syncd.errors import UsageError
from syncd.store.names import (
    check_description,
    check_email,
    check_icon,
    check_name,
    shown,
    storable,
)
from syncd.store.schema import GROUP_KINDS, ROLES, Group, Membership, User


class Admin:
    """Admin operations on the store; each call is one transaction with its audit records."""

    def __init__(self, engine: Engine, audit: AuditWriter, actor: str,
                 custom_roles: tuple[str, ...] = ()) -> None:
        self.engine = engine
        self.audit = audit
        self.actor = actor
        self.roles = (*ROLES, *custom_roles)

    @contextmanager
    def _tx(self) -> Iterator[tuple[Session, list[Audit]]]:
        records: list[Audit] = []
        self.audit.catch_up(self.engine)
        with Session(self.engine) as session:
            try:
                self.audit.begin(session.connection())
                yield session, records
                session.flush()
                self.audit.add_all(session.connection(), records)
                self.audit.flush_rows(session.connection())
                session.commit()
            except BaseException:
                session.rollback()
                self.audit.rolled_back()
                raise
        self.audit.committed(self.engine)

    # -- look-ups ---------------------------------------------------------------------------

    @staticmethod
    def _group(session: Session, name: str, organisation: str | None) -> Group:
        # A look-up takes any text: a name the store refuses today may be in an older store.
        # Text no store can hold names nothing, and asking PostgreSQL about it fails.
        found: list[Group] = []
        if storable(name) and storable(organisation or ""):
            query = select(Group).where(Group.name == name)
            if organisation is not None:
                query = query.where(Group.organisation == organisation)
            found = list(session.scalars(query))
            if not found:
                by_id = session.get(Group, name)
                if by_id is not None:
                    return by_id
        if not found:
            raise UsageError(f"no group named {shown(name)}"
                             + (f" in organisation {shown(organisation)}" if organisation else ""))
        if len(found) > 1:
            orgs = ", ".join(sorted(g.organisation for g in found))
            raise UsageError(f"group name {shown(name)} exists in several organisations "
                             f"({orgs}): give --organisation")
        return found[0]

    @staticmethod
    def _user(session: Session, user_name: str) -> User:
        user = Admin._find_user(session, user_name)
        if user is None:
            raise UsageError(f"no user named {shown(user_name)}")
        return user

    @staticmethod
    def _find_user(session: Session, user_name: str) -> User | None:
        if not storable(user_name):
            return None
        return session.scalars(select(User).where(User.user_name == user_name)).first()

    def _check_role(self, role: str) -> None:
        if role not in self.roles:
            raise UsageError(f"unknown role {shown(role)}: use one of {', '.join(self.roles)} "
                             "(custom roles are declared under custom_roles in the config)")

    # -- groups -----------------------------------------------------------------------------

    def list_groups(self) -> list[dict[str, Any]]:
        """Every group with its member count."""
        with Session(self.engine) as session:
            counts = dict(session.execute(
                select(Membership.group_id, func.count()).group_by(Membership.group_id)
            ).all())
            groups = session.scalars(select(Group).order_by(Group.organisation, Group.name))
            return [
                {"id": g.id, "name": g.name, "members": counts.get(g.id, 0),
                 "managed": g.managed, "source": g.source, "organisation": g.organisation,
                 "kind": g.kind, "archived": g.archived}
                for g in groups
            ]

    def show_group(self, name: str, organisation: str | None = None) -> dict[str, Any]:
        """One group with its members, as CONTRACT section 4 shows it."""
        with Session(self.engine) as session:
            g = self._group(session, name, organisation)
            members = session.execute(
                select(Membership, User).join(User, Membership.user_id == User.id)
                .where(Membership.group_id == g.id).order_by(User.user_name)
            ).all()
            return {
                "id": g.id, "name": g.name, "description": g.description, "kind": g.kind,
                "organisation": g.organisation, "managed": g.managed, "source": g.source,
                "external_id": g.external_id, "rule": g.rule, "icon": g.icon,
                "archived": g.archived,
                "members": [
                    {"user": u.user_name, "email": u.email, "role": m.role, "status": m.status,
                     "origin": m.origin, "external": u.external}
                    for m, u in members
                ],
            }

    def create_group(self, name: str, description: str = "", kind: str = "standard",
                     organisation: str = "default", icon: str | None = None) -> dict[str, Any]:
        """A local group made by hand (not managed by sync)."""
        check_name("group name", name)
        check_name("organisation", organisation)
        check_description("description", description)
        if icon is not None:
            check_icon("icon", icon)
        if kind not in GROUP_KINDS:
            raise UsageError(f"unknown group kind {shown(kind)}: use standard or open")
        try:
            with self._tx() as (session, records):
                exists = session.scalars(select(Group).where(
                    Group.name == name, Group.organisation == organisation)).first()
                if exists is not None:
                    raise UsageError(f"a group named {shown(name)} already exists in "
                                     f"organisation {shown(organisation)}")
                g = Group(name=name, description=description, kind=kind,
                          organisation=organisation, icon=icon, managed=False)
                session.add(g)
                session.flush()
                attrs = {"description": description, "kind": kind,
                         "organisation": organisation}
                records.append(Audit(actor=self.actor, op="create_group", group=name,
                                     after={"id": g.id, **attrs}))
                return {"id": g.id, "name": name, **attrs}
        except IntegrityError:
            raise UsageError(f"a group named {shown(name)} already exists in organisation "
                             f"{shown(organisation)}") from None

    def delete_group(self, name: str, organisation: str | None = None) -> None:
        """Delete a group and its memberships; its users stay."""
        with self._tx() as (session, records):
            g = self._group(session, name, organisation)
            count = session.scalar(
                select(func.count()).select_from(Membership).where(Membership.group_id == g.id))
            records.append(Audit(
                actor=self.actor, op="delete_group", group=g.name, source=g.source, rule=g.rule,
                before={"id": g.id, "description": g.description, "kind": g.kind,
                        "organisation": g.organisation, "managed": g.managed,
                        "members": count}))
            session.delete(g)

    # -- members ----------------------------------------------------------------------------

    def add_member(self, group: str, user_name: str, role: str = "member",
                   email: str | None = None, organisation: str | None = None) -> None:
        """Add a member by hand, creating the user when new."""
        check_name("user name", user_name)
        if email is not None:
            check_email("email", email)
        self._check_role(role)
        with self._tx() as (session, records):
            g = self._group(session, group, organisation)
            user = self._find_user(session, user_name)
            if user is None:
                user = User(user_name=user_name, email=email, external=False, status="active")
                session.add(user)
                session.flush()
                records.append(Audit(actor=self.actor, op="create_user", user=user_name,
                                     after={"email": email, "external": False}))
            elif session.get(Membership, (g.id, user.id)) is not None:
                raise UsageError(f"{shown(user_name)} is already a member of {shown(g.name)}")
            session.add(Membership(group_id=g.id, user_id=user.id, role=role, status="accepted",
                                   origin="manual"))
            records.append(Audit(actor=self.actor, op="add_member", group=g.name, user=user_name,
                                 after={"role": role, "status": "accepted"}))

    def _membership(self, session: Session, group: str, user_name: str,
                    organisation: str | None) -> tuple[Group, Membership]:
        g = self._group(session, group, organisation)
        user = self._user(session, user_name)
        m = session.get(Membership, (g.id, user.id))
        if m is None:
            raise UsageError(f"{shown(user_name)} is not a member of {shown(g.name)}")
        return g, m

    def remove_member(self, group: str, user_name: str, organisation: str | None = None) -> None:
        """Remove a member by hand."""
        with self._tx() as (session, records):
            g, m = self._membership(session, group, user_name, organisation)
            records.append(Audit(actor=self.actor, op="remove_member", group=g.name,
                                 user=user_name, source=m.source, rule=m.rule,
                                 before={"role": m.role, "status": m.status,
                                         "origin": m.origin}))
            session.delete(m)

    def set_role(self, group: str, user_name: str, role: str,
                 organisation: str | None = None) -> None:
        """Change a member's role by hand."""
        self._check_role(role)
        with self._tx() as (session, records):
            g, m = self._membership(session, group, user_name, organisation)
            if m.role == role:
                raise UsageError(f"{shown(user_name)} already has role {shown(role)} in "
                                 f"{shown(g.name)}")
            records.append(Audit(actor=self.actor, op="change_role", group=g.name,
                                 user=user_name, before={"role": m.role},
                                 after={"role": role}))
            m.role = role

    # -- users ------------------------------------------------------------------------------

    def list_users(self) -> list[dict[str, Any]]:
        """Every user with the number of groups they are in."""
        with Session(self.engine) as session:
            counts = dict(session.execute(
                select(Membership.user_id, func.count()).group_by(Membership.user_id)
            ).all())
            users = session.scalars(select(User).order_by(User.user_name))
            return [
                {"id": u.id, "user": u.user_name, "email": u.email,
                 "display_name": u.display_name, "external": u.external, "status": u.status,
                 "groups": counts.get(u.id, 0)}
                for u in users
            ]

    def show_user(self, user_name: str) -> dict[str, Any]:
        """One user with external ids and group memberships."""
        with Session(self.engine) as session:
            u = self._user(session, user_name)
            rows = session.execute(
                select(Membership, Group).join(Group, Membership.group_id == Group.id)
                .where(Membership.user_id == u.id).order_by(Group.name)
            ).all()
            return {
                "id": u.id, "user": u.user_name, "email": u.email,
                "display_name": u.display_name, "external": u.external, "status": u.status,
                "external_ids": {x.source: x.external_id for x in u.external_ids},
                "groups": [
                    {"group": g.name, "organisation": g.organisation, "role": m.role,
                     "status": m.status, "origin": m.origin}
                    for m, g in rows
                ],
            }
