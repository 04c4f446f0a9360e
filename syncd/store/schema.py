"""The application's group domain and syncd's own state, as SQLAlchemy 2.x models.

The ORM classes serve the admin commands; the sync path uses their ``__table__`` with Core.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from syncd.store.names import check_description, check_email, check_icon, check_name

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("owner", "facilitator", "member")
MEMBER_STATUSES = ("accepted", "pending", "invited", "declined", "rejected", "deactivated",
                   "left")
USER_STATUSES = ("active", "deactivated")
GROUP_KINDS = ("standard", "open")
ORIGINS = ("sync", "manual")


def new_id() -> str:
    """A stable id for a new row."""
    return str(uuid.uuid4())


def new_ids(n: int) -> list[str]:
    """``n`` ids like ``new_id``'s (random UUIDs, version 4), from one read of the system's
    random source: a first sync makes hundreds of thousands."""
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = bytes(b & 0x0F | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # the RFC 4122 variant
    text = raw.hex()
    return [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            for h in (text[i:i + 32] for i in range(0, 32 * n, 32))]


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value is not None and dialect.name == "sqlite":
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # PostgreSQL answers in the session's time zone, which need not be UTC.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """The declarative base; its metadata is what Alembic migrates."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class User(Base):
    """A person known to the application, internal or external."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_name: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(255))
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    source: Mapped[str | None] = mapped_column(String(64), doc="connector that created it")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    external_ids: Mapped[list[UserExternalId]] = relationship(
        back_populates="user", cascade="all, delete-orphan")

    # The sync path writes with Core and checks its values itself (syncd.store.names).
    @validates("user_name")
    def _valid_user_name(self, _key: str, value: str) -> str:
        return check_name("user name", value)

    @validates("email")
    def _valid_email(self, _key: str, value: str | None) -> str | None:
        return None if value is None else check_email("email", value)


class UserExternalId(Base):
    """A user's id in one source (a directory's entryUUID or objectGUID)."""

    __tablename__ = "user_external_ids"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255))

    user: Mapped[User] = relationship(back_populates="external_ids")


class Group(Base):
    """An application group; ``id`` is the stable Group ID an API or SSO mapping reuses."""

    __tablename__ = "groups"
    __table_args__ = (
        UniqueConstraint("organisation", "name"),
        Index("ix_groups_source_external_id", "source", "external_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    icon: Mapped[str | None] = mapped_column(String(1024))
    kind: Mapped[str] = mapped_column(String(16), default="standard")
    organisation: Mapped[str] = mapped_column(String(255), default="default")
    managed: Mapped[bool] = mapped_column(Boolean, default=False,
                                          doc="written by sync (it may change or delete it)")
    source: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(255))
    rule: Mapped[str | None] = mapped_column(String(255))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="group", cascade="all, delete-orphan", passive_deletes=True)

    @validates("name", "organisation")
    def _valid_name(self, key: str, value: str) -> str:
        return check_name("group name" if key == "name" else "organisation", value)

    @validates("description")
    def _valid_description(self, _key: str, value: str) -> str:
        return check_description("description", value)

    @validates("icon")
    def _valid_icon(self, _key: str, value: str | None) -> str | None:
        return None if value is None else check_icon("icon", value)


class Membership(Base):
    """A user's membership of a group, with role, status and who made it."""

    __tablename__ = "memberships"
    # SQLite: rows kept in primary-key order, without a rowid beside it, so that a diff
    # reads a group's members in one sweep and an apply maintains one B-tree, not two.
    __table_args__ = (Index("ix_memberships_user_id", "user_id"),
                      {"sqlite_with_rowid": False})

    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(64), default="member")
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    origin: Mapped[str] = mapped_column(String(16), default="manual")
    source: Mapped[str | None] = mapped_column(String(64))
    rule: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    group: Mapped[Group] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship()


class Resource(Base):
    """A space, channel or course; its audience is groups, so access follows membership."""

    __tablename__ = "resources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    audience: Mapped[list[Group]] = relationship(secondary="resource_audiences")


class ResourceAudience(Base):
    """One audience group of a resource."""

    __tablename__ = "resource_audiences"

    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)


class Run(Base):
    """One connector's part of a sync run (a run over several connectors has one row each)."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_connector_started", "connector", "started"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    started: Mapped[datetime] = mapped_column(default=utcnow)
    finished: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class Cursor(Base):
    """A connector's delta cursor (opaque to the engine)."""

    __tablename__ = "cursors"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditBatch(Base):
    """What a batch of audit records has in common, kept once (CONTRACT section 5 shows the
    records whole; ``syncd.audit.records`` puts them together again).

    A sync writes its records in batches of up to thousands of one kind: their time, run,
    actor, op and source are always the batch's. ``rule``, ``before``, ``after`` and
    ``extra`` are the batch's too when every record of it has the same one (a first sync's
    ``{"role": "member", "status": "accepted"}``); the records then leave theirs empty, and
    otherwise the batch leaves it empty and each record holds its own.
    """

    __tablename__ = "audit_batches"
    __table_args__ = (
        Index("ix_audit_batches_ts", "ts"),
        Index("ix_audit_batches_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    ts: Mapped[datetime]
    run_id: Mapped[str | None] = mapped_column(String(36))
    actor: Mapped[str] = mapped_column(String(255))
    op: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(64))
    rule: Mapped[str | None] = mapped_column(String(255))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AuditRecord(Base):
    """One audit record (CONTRACT section 5): what is its own; the rest is its batch's."""

    __tablename__ = "audit"
    __table_args__ = (
        Index("ix_audit_batch_id", "batch_id"),
        Index("ix_audit_group", "group_name"),
        Index("ix_audit_user", "user_name"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("audit_batches.id"))
    group_name: Mapped[str | None] = mapped_column(String(255))
    user_name: Mapped[str | None] = mapped_column(String(255))
    rule: Mapped[str | None] = mapped_column(String(255))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class StoreInfo(Base):
    """The store itself: one row, whose ``id`` is made with the store and never changes, so
    that a saved plan can tell the store it was made for from any other (two empty stores
    have the same state)."""

    __tablename__ = "store_info"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditExport(Base):
    """How far an audit file has caught up with the store (``syncd.auditfile``): one row a
    file, per host, since each host writes its own."""

    __tablename__ = "audit_exports"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, doc="the newest record the file holds")
    inode: Mapped[int] = mapped_column(BigInteger, doc="the file that holds it")
    size: Mapped[int] = mapped_column(BigInteger, doc="the file's size with that record")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Lease(Base):
    """A named lease, so that only one of several instances runs a connector at a time."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]



class MirrorState(Base):
    """What a connector's mirror holds: which group attributes were fetched, and counts."""

    __tablename__ = "mirror_state"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    attributes: Mapped[list[str]] = mapped_column(JSON)
    groups: Mapped[int] = mapped_column(Integer)
    users: Mapped[int] = mapped_column(Integer)
    rules: Mapped[str | None] = mapped_column(
        String(80), doc="fingerprint of the rules the last sync applied (delta runs)")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MirrorIndex(Base):
    """A connector's mirror as the engine indexes it, in one value (``syncd.index``): a
    delta run reads it instead of every mirror row. It holds while ``updated_at`` equals
    the mirror state's."""

    __tablename__ = "mirror_index"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column()
    data: Mapped[bytes] = mapped_column(LargeBinary)


class MirrorUser(Base):
    """A user of a connector's last complete snapshot (for deltas, offline plans, explain)."""

    __tablename__ = "mirror_users"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    digest: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class MirrorGroup(Base):
    """A group of a connector's last complete snapshot, with its member refs."""

    __tablename__ = "mirror_groups"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    digest: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


tables = Base.metadata.tables
