"""The group store on real databases (SQLite and PostgreSQL): schema, constraints, admin, audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, func, insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd.audit import Audit, AuditWriter, records, write_batch
from syncd.errors import StoreError, UsageError
from syncd.store import bulk, db
from syncd.store.admin import Admin
from syncd.store.bulk import insert_rows
from syncd.store.db import current_revision, ensure_schema, head_revision, open_engine, upgrade
from syncd.store.names import InvalidValue
from syncd.store.schema import (
    AuditRecord,
    Base,
    Group,
    Membership,
    Resource,
    ResourceAudience,
    User,
    UserExternalId,
    new_ids,
    tables,
)

ACTOR = "cli:tester"


# -- schema ---------------------------------------------------------------------------------


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_creates_every_table_at_head(store_url: str) -> None:
    engine = open_engine(store_url)
    try:
        assert current_revision(engine) is None
        assert table_names(engine) == set()
        before, after = upgrade(engine)
        assert (before, after) == (None, head_revision(engine))
        assert current_revision(engine) == head_revision(engine)
        assert table_names(engine) == {*Base.metadata.tables, "alembic_version"}
        # Upgrading a store at head changes nothing.
        assert upgrade(engine) == (head_revision(engine), head_revision(engine))
    finally:
        engine.dispose()


def test_migrations_match_the_models(store_engine: Engine) -> None:
    with store_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"the models and the migrations differ: {diff}"


def test_upgrade_from_the_first_revision(store_url: str) -> None:
    engine = open_engine(store_url)
    try:
        cfg = db._alembic_config(engine)
        first = ScriptDirectory.from_config(cfg).get_base()
        assert isinstance(first, str)
        command.upgrade(cfg, first)
        assert current_revision(engine) == first
        assert upgrade(engine) == (first, head_revision(engine))
        assert table_names(engine) == {*Base.metadata.tables, "alembic_version"}
    finally:
        engine.dispose()


def test_audit_records_survive_the_move_to_batches(store_url: str) -> None:
    """0005 keeps what a batch of records shares once: records written before it read back
    the same after the upgrade, new ones follow them, and the downgrade puts all back."""
    engine = open_engine(store_url)
    try:
        cfg = db._alembic_config(engine)
        command.upgrade(cfg, "0004")
        old = [
            {"ts": datetime(2026, 11, 30, 9, 0, tzinfo=UTC), "run_id": "r1", "actor": "sync:corp",
             "op": "add_member", "group_name": "eng", "user_name": "ann", "rule": "all",
             "source": "corp", "before": None, "after": {"role": "member", "status": "accepted"},
             "extra": None},
            {"ts": datetime(2026, 11, 30, 9, 5, tzinfo=UTC), "run_id": None, "actor": "cli:root",
             "op": "delete_group", "group_name": "ops", "user_name": None, "rule": None,
             "source": None, "before": {"id": "x"}, "after": None, "extra": {"why": "ü"}},
        ]
        with engine.begin() as conn:
            legacy = sa.Table("audit", sa.MetaData(), autoload_with=conn)
            conn.execute(insert(legacy), old)
        upgrade(engine)
        new = Audit(actor="sync:corp", op="remove_member", run_id="r2", group="eng",
                    user="bob", rule="all", source="corp")
        writer = AuditWriter(None)
        with engine.begin() as conn:
            writer.add(conn, new)
            writer.flush_rows(conn)
        expected = [Audit(actor=r["actor"], op=r["op"], run_id=r["run_id"],
                          group=r["group_name"], user=r["user_name"], rule=r["rule"],
                          source=r["source"], before=r["before"], after=r["after"],
                          extra=r["extra"], ts=r["ts"]) for r in old]
        assert [a.to_json() for a in audit_rows(engine)] == [
            a.to_json() for a in (*expected, new)]

        command.downgrade(cfg, "0004")
        with engine.connect() as conn:
            legacy = sa.Table("audit", sa.MetaData(), autoload_with=conn)
            back = [Audit.from_row(r) for r in conn.execute(select(legacy).order_by(legacy.c.id))]
        for a in back:  # the reflected column drops SQLite's zone: the store keeps UTC
            a.ts = a.ts if a.ts.tzinfo else a.ts.replace(tzinfo=UTC)
        assert [a.to_json() for a in back] == [a.to_json() for a in (*expected, new)]
        assert "audit_batches" not in table_names(engine)
    finally:
        engine.dispose()


def test_ensure_schema_creates_an_empty_store(store_url: str) -> None:
    engine = open_engine(store_url)
    try:
        ensure_schema(engine)
        assert current_revision(engine) == head_revision(engine)
        assert "groups" in table_names(engine)
        ensure_schema(engine)  # a store at head is fine
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(tables["groups"])) == 0
    finally:
        engine.dispose()


def test_ensure_schema_refuses_a_store_at_an_older_revision(store_url: str) -> None:
    engine = open_engine(store_url)
    try:
        command.upgrade(db._alembic_config(engine), "0004")
        with pytest.raises(StoreError, match=r"revision 0004, this syncd needs .*syncd db "
                                             "upgrade"):
            ensure_schema(engine)
        assert current_revision(engine) == "0004"
    finally:
        engine.dispose()


def set_revision(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


@pytest.mark.parametrize("operation", [
    pytest.param(upgrade, id="upgrade"),
    pytest.param(ensure_schema, id="ensure_schema"),
    pytest.param(lambda e: db.open_store(e.url.render_as_string(hide_password=False),
                                         create=False), id="open_store-read"),
    pytest.param(lambda e: db.open_store(e.url.render_as_string(hide_password=False),
                                         create=True), id="open_store-write"),
])
def test_a_store_of_a_newer_syncd_is_left_alone(store_engine: Engine, operation: Any) -> None:
    """A revision this syncd has no migration for: one clear error, and no change."""
    set_revision(store_engine, "ffff_from_the_future")
    tables_before = table_names(store_engine)
    with pytest.raises(StoreError) as info:
        operation(store_engine)
    message = str(info.value)
    assert "schema revision 'ffff_from_the_future', unknown to this syncd" in message
    assert "written by a newer syncd; upgrade syncd" in message
    assert "\n" not in message
    assert info.value.exit_code == 1
    assert current_revision(store_engine) == "ffff_from_the_future"
    assert table_names(store_engine) == tables_before


def test_reading_a_missing_store_creates_nothing(store_url: str, tmp_path: Path) -> None:
    """A command that only reads never makes a store: not the SQLite file or its folder,
    not a table in PostgreSQL."""
    with pytest.raises(UsageError) as info:
        db.open_store(store_url, create=False, origin="store.url in /etc/x.yaml")
    message = str(info.value)
    assert message.startswith(f"no syncd store at {db.location(store_url)}, where store.url "
                              "in /etc/x.yaml points: create one with 'syncd db upgrade' or a "
                              "first 'syncd sync'")
    assert info.value.exit_code == 2
    assert not (tmp_path / "store").exists()
    engine = open_engine(store_url)
    try:
        assert table_names(engine) == set()
    finally:
        engine.dispose()


def test_reading_an_empty_store_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "syncd.db"
    path.touch()
    with pytest.raises(UsageError, match="no syncd store at"):
        db.open_store(f"sqlite:///{path}", create=False)
    engine = open_engine(f"sqlite:///{path}")
    try:
        assert table_names(engine) == set()
    finally:
        engine.dispose()


def test_writing_makes_a_missing_store(store_url: str) -> None:
    engine = db.open_store(store_url, create=True)
    try:
        assert current_revision(engine) == head_revision(engine)
    finally:
        engine.dispose()
    again = db.open_store(store_url, create=False)  # now there is one to read
    again.dispose()


def test_a_password_never_shows_in_a_store_location() -> None:
    assert db.location("postgresql+psycopg://u:s3cret-pw@db.example.org/syncd") == (
        "postgresql+psycopg://u:***@db.example.org/syncd")


def good_sqlite_store(path: Path) -> None:
    engine = open_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        Admin(engine, AuditWriter(None), ACTOR).create_group("eng")
    finally:
        engine.dispose()  # checkpoints the WAL into the file and removes it


def corrupt(path: Path, kind: str) -> None:
    if kind == "random":
        path.write_bytes(os.urandom(64 * 1024))
    elif kind == "text":
        path.write_text("this is not a database\n" * 100, encoding="utf-8")
    else:
        good_sqlite_store(path)
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])


def upgrade_at(url: str) -> None:
    engine = open_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["random", "text", "truncated"])
@pytest.mark.parametrize("operation", [
    pytest.param(lambda url: db.open_store(url, create=False), id="read"),
    pytest.param(lambda url: db.open_store(url, create=True), id="write"),
    pytest.param(upgrade_at, id="upgrade"),
])
def test_a_corrupt_sqlite_store_is_one_clear_store_error(tmp_path: Path, kind: str,
                                                        operation: Any) -> None:
    path = tmp_path / "syncd.db"
    corrupt(path, kind)
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        operation(f"sqlite:///{path}")
    assert info.value.exit_code == 1
    reason = ("database disk image is malformed" if kind == "truncated"
              else "file is not a database")
    assert str(info.value) == f"cannot open the store {path}: {reason}"
    assert path.read_bytes() == before


def test_ensure_schema_refuses_a_database_with_other_tables(store_url: str) -> None:
    engine = open_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE someone_elses (id integer primary key)"))
        with pytest.raises(StoreError, match="no syncd schema version"):
            ensure_schema(engine)
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_sqlite_gets_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'syncd.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert (tmp_path / "deep" / "dir" / "syncd.db").exists()
    finally:
        engine.dispose()


def test_resolve_url_makes_relative_sqlite_paths_absolute(tmp_path: Path) -> None:
    assert db.resolve_url("sqlite:///state/syncd.db", tmp_path) == (
        f"sqlite:///{tmp_path / 'state' / 'syncd.db'}")
    assert db.resolve_url("sqlite:////abs/syncd.db", tmp_path) == "sqlite:////abs/syncd.db"
    pg = "postgresql+psycopg://u:p@db.example.org/syncd"
    assert db.resolve_url(pg, tmp_path) == pg


# -- constraints ----------------------------------------------------------------------------


def add_group(conn: Any, name: str, organisation: str = "default") -> str:
    gid = f"g-{name}-{organisation}"
    now = datetime.now(UTC)
    conn.execute(insert(tables["groups"]).values(
        id=gid, name=name, organisation=organisation, description="", kind="standard",
        managed=False, archived=False, created_at=now, updated_at=now))
    return gid


def add_user(conn: Any, name: str) -> str:
    uid = f"u-{name}"
    now = datetime.now(UTC)
    conn.execute(insert(tables["users"]).values(
        id=uid, user_name=name, external=False, status="active", created_at=now,
        updated_at=now))
    return uid


def add_membership(conn: Any, gid: str, uid: str) -> None:
    now = datetime.now(UTC)
    conn.execute(insert(tables["memberships"]).values(
        group_id=gid, user_id=uid, role="member", status="accepted", origin="manual",
        created_at=now, updated_at=now))


def test_group_name_is_unique_per_organisation(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        add_group(conn, "eng")
        add_group(conn, "eng", organisation="other")
    with pytest.raises(IntegrityError), store_engine.begin() as conn:
        conn.execute(insert(tables["groups"]).values(
            id="g-dup", name="eng", organisation="default", description="", kind="standard",
            managed=False, archived=False, created_at=datetime.now(UTC),
            updated_at=datetime.now(UTC)))
    with store_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(tables["groups"])) == 2


def test_deleting_a_group_cascades_to_memberships_and_audiences(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        eng, ops = add_group(conn, "eng"), add_group(conn, "ops")
        alice, bob = add_user(conn, "alice"), add_user(conn, "bob")
        for gid, uid in ((eng, alice), (eng, bob), (ops, bob)):
            add_membership(conn, gid, uid)
        conn.execute(insert(tables["resources"]).values(
            id="r1", type="space", name="Engineering", created_at=datetime.now(UTC)))
        conn.execute(insert(tables["resource_audiences"]), [
            {"resource_id": "r1", "group_id": eng}, {"resource_id": "r1", "group_id": ops}])
    with store_engine.begin() as conn:
        conn.execute(delete(tables["groups"]).where(tables["groups"].c.id == eng))
    with store_engine.connect() as conn:
        assert conn.execute(select(tables["memberships"].c.group_id,
                                   tables["memberships"].c.user_id)).all() == [(ops, bob)]
        assert conn.execute(select(tables["resource_audiences"].c.group_id)).scalars().all() == [
            ops]
        assert sorted(conn.execute(select(tables["users"].c.user_name)).scalars()) == [
            "alice", "bob"]
        assert conn.scalar(select(func.count()).select_from(tables["resources"])) == 1


def test_deleting_a_user_cascades_to_memberships_and_external_ids(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        eng = add_group(conn, "eng")
        alice = add_user(conn, "alice")
        add_membership(conn, eng, alice)
        conn.execute(insert(tables["user_external_ids"]).values(
            user_id=alice, source="corp", external_id="uuid-1"))
    with store_engine.begin() as conn:
        conn.execute(delete(tables["users"]).where(tables["users"].c.id == alice))
    with store_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(tables["memberships"])) == 0
        assert conn.scalar(select(func.count()).select_from(tables["user_external_ids"])) == 0
        assert conn.scalar(select(func.count()).select_from(tables["groups"])) == 1


def test_membership_needs_an_existing_group_and_user(store_engine: Engine) -> None:
    with pytest.raises(IntegrityError), store_engine.begin() as conn:
        add_membership(conn, "no-such-group", "no-such-user")


def test_timestamps_read_back_timezone_aware_utc(store_engine: Engine) -> None:
    written = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    naive = datetime(2026, 3, 29, 8, 0)  # taken as UTC
    with Session(store_engine) as session:
        session.add(Group(id="g1", name="eng", created_at=written, updated_at=naive))
        session.commit()
    with store_engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # The server answers in the session's zone: it must not leak through.
            conn.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
        row = conn.execute(select(tables["groups"].c.created_at,
                                  tables["groups"].c.updated_at)).one()
    for value in row:
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
    assert row.created_at == written
    assert row.created_at.hour == 23
    assert row.updated_at == naive.replace(tzinfo=UTC)
    with Session(store_engine) as session:
        g = session.get(Group, "g1")
        assert g is not None
        assert g.created_at.utcoffset() == timedelta(0)
        assert g.created_at == written


def test_orm_defaults(store_engine: Engine) -> None:
    before = datetime.now(UTC)
    with Session(store_engine) as session:
        g = Group(name="eng")
        u = User(user_name="alice")
        session.add_all([g, u])
        session.flush()
        session.add(Membership(group_id=g.id, user_id=u.id))
        session.commit()
        gid = g.id
    with Session(store_engine) as session:
        g = session.get(Group, gid)
        assert g is not None
        assert len(g.id) == 36
        assert (g.description, g.kind, g.organisation, g.managed, g.archived) == (
            "", "standard", "default", False, False)
        assert g.created_at >= before - timedelta(seconds=5)
        [m] = g.memberships
        assert (m.role, m.status, m.origin) == ("member", "accepted", "manual")


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Group(name="a\nb"), r"group name 'a\\nb' contains a control character"),
    (lambda: Group(name="eng", organisation=" acme"), "organisation ' acme' has leading"),
    (lambda: Group(name="x" * 201), "longer than 200 characters"),
    (lambda: Group(name="eng", description="a\x1bb"), r"description 'a\\x1bb' contains"),
    (lambda: Group(name="eng", icon="a\u2028b"), r"icon 'a\\u2028b' contains a control "
                                                  r"character \(U\+2028\)"),
    (lambda: User(user_name=""), "user name '' is empty"),
    (lambda: User(user_name="bob", email="bob at example.org"), "email 'bob at example"),
])
def test_the_models_refuse_what_the_store_refuses(make: Any, message: str) -> None:
    """No writer through the ORM stores a bad value, on either driver."""
    with pytest.raises(InvalidValue, match=message) as info:
        make()
    assert isinstance(info.value, ValueError)
    assert info.value.exit_code == 2


def test_the_models_refuse_a_bad_value_set_later(store_engine: Engine) -> None:
    with Session(store_engine) as session:
        g = Group(name="eng", description="two\nlines\tand a tab", icon=None)
        u = User(user_name="ünï", email="ünï@exämple.org")
        session.add_all([g, u])
        session.commit()
        with pytest.raises(InvalidValue, match="group name"):
            g.name = "eng\x00"
        with pytest.raises(InvalidValue, match="email"):
            u.email = "x@localhost"
        session.commit()
    with Session(store_engine) as session:
        assert session.scalars(select(Group.name)).all() == ["eng"]
        assert session.scalars(select(User.email)).all() == ["ünï@exämple.org"]


# -- admin operations and their audit records -----------------------------------------------


def audit_rows(engine: Engine) -> list[Audit]:
    with engine.connect() as conn:
        return [Audit.from_row(r) for r in conn.execute(records().order_by(AuditRecord.id))]


def audit_file_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def audit_file(tmp_path: Path) -> Path:
    return tmp_path / "log" / "audit.jsonl"


@pytest.fixture
def admin(store_engine: Engine, audit_file: Path) -> Admin:
    return Admin(store_engine, AuditWriter(audit_file), ACTOR, ("editor",))


def test_admin_operations_write_audit_records(admin: Admin, store_engine: Engine,
                                              audit_file: Path) -> None:
    created = admin.create_group("eng", "Engineering", "open", "acme")
    assert created["name"] == "eng"
    admin.add_member("eng", "alice", "owner", email="alice@example.org")
    admin.add_member("eng", "bob")
    admin.set_role("eng", "bob", "editor")
    admin.remove_member("eng", "alice")
    admin.delete_group("eng")

    records = audit_rows(store_engine)
    assert [(r.op, r.group, r.user) for r in records] == [
        ("create_group", "eng", None),
        ("create_user", None, "alice"),
        ("add_member", "eng", "alice"),
        ("create_user", None, "bob"),
        ("add_member", "eng", "bob"),
        ("change_role", "eng", "bob"),
        ("remove_member", "eng", "alice"),
        ("delete_group", "eng", None),
    ]
    assert {r.actor for r in records} == {ACTOR}
    assert {r.run_id for r in records} == {None}
    assert records[0].after == {"id": created["id"], "description": "Engineering",
                                "kind": "open", "organisation": "acme"}
    assert records[1].after == {"email": "alice@example.org", "external": False}
    assert records[2].before is None
    assert records[2].after == {"role": "owner", "status": "accepted"}
    assert records[4].after == {"role": "member", "status": "accepted"}
    assert (records[5].before, records[5].after) == ({"role": "member"}, {"role": "editor"})
    assert records[6].before == {"role": "owner", "status": "accepted", "origin": "manual"}
    assert records[6].after is None
    assert records[7].before is not None
    assert records[7].before["members"] == 1
    for r in records:
        assert r.ts.tzinfo is not None
    assert [r.ts for r in records] == sorted(r.ts for r in records)

    # The file holds the same records, in the same order, in the CONTRACT section 5 shape.
    lines = audit_file_lines(audit_file)
    assert lines == [r.to_json() for r in records]
    assert list(lines[2]) == ["ts", "run_id", "actor", "op", "group", "user", "rule", "source",
                              "before", "after"]
    assert lines[2]["ts"].endswith("Z")
    datetime.strptime(lines[2]["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_admin_reads(admin: Admin) -> None:
    admin.create_group("eng", "Engineering")
    admin.create_group("ops", organisation="acme")
    admin.add_member("eng", "alice", email="alice@example.org")
    admin.add_member("eng", "bob", "facilitator")
    admin.add_member("ops", "bob")

    groups = {g["name"]: g for g in admin.list_groups()}
    assert {n: (g["members"], g["organisation"], g["managed"], g["source"])
            for n, g in groups.items()} == {"eng": (2, "default", False, None),
                                            "ops": (1, "acme", False, None)}
    shown = admin.show_group("eng")
    assert shown["description"] == "Engineering"
    assert shown["members"] == [
        {"user": "alice", "email": "alice@example.org", "role": "member", "status": "accepted",
         "origin": "manual", "external": False},
        {"user": "bob", "email": None, "role": "facilitator", "status": "accepted",
         "origin": "manual", "external": False},
    ]
    assert admin.show_group(shown["id"])["name"] == "eng"  # by id too
    users = {u["user"]: u["groups"] for u in admin.list_users()}
    assert users == {"alice": 1, "bob": 2}
    bob = admin.show_user("bob")
    assert [(g["group"], g["organisation"], g["role"]) for g in bob["groups"]] == [
        ("eng", "default", "facilitator"), ("ops", "acme", "member")]
    assert bob["external_ids"] == {}


def test_show_user_lists_external_ids(admin: Admin, store_engine: Engine) -> None:
    admin.create_group("eng")
    admin.add_member("eng", "alice")
    with Session(store_engine) as session:
        user = session.scalars(select(User).where(User.user_name == "alice")).one()
        session.add(UserExternalId(user_id=user.id, source="corp", external_id="uuid-1"))
        session.commit()
    assert admin.show_user("alice")["external_ids"] == {"corp": "uuid-1"}


@pytest.mark.parametrize(("operation", "message"), [
    (lambda a: a.create_group("eng"), "already exists in organisation 'default'"),
    (lambda a: a.add_member("nope", "alice"), "no group named 'nope'"),
    (lambda a: a.add_member("eng", "alice"), "'alice' is already a member of 'eng'"),
    (lambda a: a.add_member("eng", "carol", "boss"), "unknown role 'boss'"),
    (lambda a: a.set_role("eng", "alice", "boss"), "unknown role 'boss'"),
    (lambda a: a.set_role("eng", "alice", "member"), "already has role 'member'"),
    (lambda a: a.remove_member("eng", "nobody"), "no user named 'nobody'"),
    (lambda a: a.remove_member("eng", "bob"), "'bob' is not a member of 'eng'"),
    (lambda a: a.delete_group("nope"), "no group named 'nope'"),
    (lambda a: a.create_group("  "), "group name '  ' is blank"),
    (lambda a: a.create_group(""), "group name '' is empty"),
    (lambda a: a.create_group("a\nb"), r"group name 'a\\nb' contains a control character "
                                        r"\(U\+000A\)"),
    (lambda a: a.create_group(" eng"), "group name ' eng' has leading or trailing white space"),
    (lambda a: a.create_group("x" * 300), r"group name 'x{40}'… \(300 characters\) is longer "
                                          "than 200 characters"),
    (lambda a: a.create_group("x", organisation=""), "organisation '' is empty"),
    (lambda a: a.create_group("x", organisation="acme\r"), "organisation 'acme.*control"),
    (lambda a: a.create_group("x", description="bell\a"), r"description 'bell\\x07' contains "
                                                          "a control character"),
    (lambda a: a.create_group("x", description="d" * 4001), "longer than 4000 characters"),
    (lambda a: a.create_group("x", icon="i" * 1025), "icon .* longer than 1024 characters"),
    (lambda a: a.add_member("eng", ""), "user name '' is empty"),
    (lambda a: a.add_member("eng", "carol\t"), r"user name 'carol\\t' contains a control"),
    (lambda a: a.add_member("eng", "carol", email="carol"), "email 'carol' is not an email"),
    (lambda a: a.add_member("eng", "carol", email="c@d@e.org"), "email 'c@d@e.org' is not"),
    (lambda a: a.add_member("eng", "carol", email="e" * 321), "longer than 320 characters"),
    (lambda a: a.show_group("a\x00b"), r"no group named 'a\\x00b'"),
    (lambda a: a.delete_group("n" * 10_000), r"no group named 'n{40}'… \(10000 characters\)$"),
    (lambda a: a.show_group("eng", "a\x00b"), "no group named 'eng' in organisation"),
    (lambda a: a.show_user("a\x00b"), r"no user named 'a\\x00b'"),
    (lambda a: a.remove_member("eng", "a\x00b"), r"no user named 'a\\x00b'"),
    (lambda a: a.set_role("eng", "alice", "r" * 300), r"unknown role 'r{40}'… \(300 char"),
    (lambda a: a.create_group("x", kind="secret"), "unknown group kind"),
    (lambda a: a.show_group("nope"), "no group named 'nope'"),
    (lambda a: a.show_user("nobody"), "no user named 'nobody'"),
])
def test_admin_errors_change_nothing(admin: Admin, store_engine: Engine, audit_file: Path,
                                     operation: Any, message: str) -> None:
    admin.create_group("eng")
    admin.add_member("eng", "alice")
    admin.create_group("other")
    admin.add_member("other", "bob")
    rows_before = len(audit_rows(store_engine))
    file_before = audit_file_lines(audit_file)
    with pytest.raises(UsageError, match=message) as info:
        operation(admin)
    assert info.value.exit_code == 2
    assert len(audit_rows(store_engine)) == rows_before
    assert audit_file_lines(audit_file) == file_before
    shown = admin.show_group("eng")
    assert [(m["user"], m["role"]) for m in shown["members"]] == [("alice", "member")]
    # The writer is still usable after the failure, and records only what commits.
    admin.add_member("eng", "dave")
    assert audit_file_lines(audit_file)[len(file_before):] == [
        r.to_json() for r in audit_rows(store_engine)[rows_before:]]


def test_name_in_several_organisations_needs_the_organisation(admin: Admin) -> None:
    admin.create_group("eng", organisation="a")
    admin.create_group("eng", organisation="b")
    with pytest.raises(UsageError, match="several organisations \\(a, b\\)"):
        admin.add_member("eng", "alice")
    admin.add_member("eng", "alice", organisation="b")
    assert admin.show_group("eng", "b")["members"][0]["user"] == "alice"
    assert admin.show_group("eng", "a")["members"] == []


def test_admin_delete_group_keeps_users_and_drops_audiences(admin: Admin,
                                                            store_engine: Engine) -> None:
    admin.create_group("eng")
    admin.add_member("eng", "alice")
    gid = admin.show_group("eng")["id"]
    with Session(store_engine) as session:
        session.add(Resource(id="r1", type="channel", name="eng-chat"))
        session.flush()
        session.add(ResourceAudience(resource_id="r1", group_id=gid))
        session.commit()
    admin.delete_group("eng")
    with Session(store_engine) as session:
        assert session.scalar(select(func.count()).select_from(Membership)) == 0
        assert session.scalar(select(func.count()).select_from(ResourceAudience)) == 0
        assert session.scalars(select(User.user_name)).all() == ["alice"]
        assert session.get(Resource, "r1") is not None
    assert [g["name"] for g in admin.list_groups()] == []


# -- the audit writer -----------------------------------------------------------------------


def record(op: str, **kw: Any) -> Audit:
    return Audit(actor="sync:corp", op=op, run_id="run-1", group="eng", source="corp",
                 rule="engineering", **kw)


def test_audit_file_written_only_after_commit(store_engine: Engine, audit_file: Path) -> None:
    writer = AuditWriter(audit_file)
    with store_engine.connect() as conn:
        with conn.begin():
            writer.add(conn, record("add_member", user="alice",
                                    after={"role": "member", "status": "accepted"}))
            writer.flush_rows(conn)
            assert audit_file_lines(audit_file) == []
        writer.committed(store_engine)
    lines = audit_file_lines(audit_file)
    assert [(r["op"], r["user"], r["actor"], r["run_id"]) for r in lines] == [
        ("add_member", "alice", "sync:corp", "run-1")]
    assert lines == [r.to_json() for r in audit_rows(store_engine)]


def test_audit_file_not_written_after_rollback(store_engine: Engine, audit_file: Path) -> None:
    writer = AuditWriter(audit_file)

    class Boom(Exception):
        pass

    with store_engine.connect() as conn:
        with pytest.raises(Boom), conn.begin():
            writer.add(conn, record("remove_member", user="bob"))
            writer.flush_rows(conn)
            raise Boom
        writer.rolled_back()
        writer.committed(store_engine)  # nothing of the rolled-back transaction may surface
    assert audit_file_lines(audit_file) == []
    assert audit_rows(store_engine) == []
    # The next transaction is written as usual.
    with store_engine.connect() as conn:
        with conn.begin():
            writer.add(conn, record("add_member", user="carol"))
            writer.flush_rows(conn)
        writer.committed(store_engine)
    assert [r["user"] for r in audit_file_lines(audit_file)] == ["carol"]


def test_audit_writer_batches_and_appends(store_engine: Engine, audit_file: Path) -> None:
    audit_file.parent.mkdir(parents=True)
    audit_file.write_text('{"op": "earlier"}\n', encoding="utf-8")
    writer = AuditWriter(audit_file, batch_size=2)
    with store_engine.connect() as conn:
        with conn.begin():
            writer.add_all(conn, [record("add_member", user=f"u{i}") for i in range(5)])
            # Two full batches went to the table already, in this transaction.
            assert conn.scalar(select(func.count()).select_from(tables["audit"])) == 4
            writer.flush_rows(conn)
        writer.committed(store_engine)
    lines = audit_file_lines(audit_file)
    assert lines[0] == {"op": "earlier"}
    assert [r["user"] for r in lines[1:]] == [f"u{i}" for i in range(5)]
    assert [r.user for r in audit_rows(store_engine)] == [f"u{i}" for i in range(5)]


def test_audit_writer_without_file(store_engine: Engine) -> None:
    writer = AuditWriter(None)
    with store_engine.connect() as conn:
        with conn.begin():
            writer.add(conn, record("create_group", after={"kind": "standard"}))
            writer.flush_rows(conn)
        writer.committed(store_engine)
    [row] = audit_rows(store_engine)
    assert (row.op, row.after, row.extra) == ("create_group", {"kind": "standard"}, None)


def test_audit_json_roundtrip_through_the_store(store_engine: Engine) -> None:
    ts = datetime(2026, 11, 22, 13, 0, 0, 123456, tzinfo=UTC)
    original = Audit(actor="sync:corp", op="change_role", run_id="r", group="g", user="u",
                     rule="x", source="corp", before={"role": "member"},
                     after={"role": "owner", "nested": {"a": [1, "ü"]}},
                     extra={"why": "test"}, ts=ts)
    writer = AuditWriter(None)
    with store_engine.begin() as conn:
        writer.add(conn, original)
        writer.flush_rows(conn)
    [back] = audit_rows(store_engine)
    assert back.to_json() == original.to_json()
    assert back.to_json()["ts"] == "2026-11-22T13:00:00.123456Z"
    assert back.to_json()["extra"] == {"why": "test"}
    assert "extra" not in Audit(actor="a", op="b").to_json()


def test_group_update_bumps_updated_at(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        add_group(conn, "eng")
    with Session(store_engine) as session:
        g = session.scalars(select(Group)).one()
        first = g.updated_at
        session.execute(update(Group).where(Group.id == g.id).values(description="x"))
        session.commit()
    with Session(store_engine) as session:
        g = session.scalars(select(Group)).one()
        assert g.description == "x"
        assert g.updated_at >= first


# -- the servers rule -------------------------------------------------------------------------


@pytest.mark.parametrize(("ci", "exit_code", "outcome"), [
    ("true", 1, "1 failed"),
    ("", 0, "1 skipped"),
])
def test_missing_postgresql_fails_in_ci_and_skips_elsewhere(ci: str, exit_code: int,
                                                            outcome: str) -> None:
    env = {**os.environ, "CI": ci,
           "SYNCD_TEST_PG_URL": "postgresql+psycopg://postgres@127.0.0.1:1/test"}
    node = f"{__file__}::test_ensure_schema_creates_an_empty_store[postgresql]"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             node], env=env, capture_output=True, text=True, timeout=300,
                            check=False, cwd=Path(__file__).parent.parent.parent)
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert outcome in result.stdout
    assert "PostgreSQL is not available" in result.stdout


# -- bulk loads -----------------------------------------------------------------------------


def index_names(engine: Engine, table: str) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes(table) if i["name"]}


def test_a_bulk_load_builds_the_indexes_afresh_on_sqlite_only(
        store_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "REBUILD_MIN_ROWS", 10)
    audit = tables["audit"]
    names = {i.name for i in audit.indexes}
    assert index_names(store_engine, "audit") == names
    sqlite = store_engine.dialect.name == "sqlite"
    shared = {"ts": bulk.timestamp(store_engine.dialect, datetime(2026, 12, 7, tzinfo=UTC)),
              "actor": "sync:corp", "op": "add_member"}
    rows = [("eng", f"u{i}") for i in range(30)]
    columns = ("group_name", "user_name")

    # A load that fails is rolled back, and the indexes are as they were.
    class Boom(Exception):
        pass

    with pytest.raises(Boom), store_engine.begin() as conn, \
            bulk.indexes_rebuilt(conn, audit, len(rows)) as dropped:
        assert dropped is sqlite
        write_batch(conn, shared, columns, rows)
        raise Boom
    assert index_names(store_engine, "audit") == names

    # Committed: the rows are there, the indexes built again and in use.
    with store_engine.begin() as conn, bulk.indexes_rebuilt(conn, audit, len(rows)) as dropped:
        assert dropped is sqlite
        write_batch(conn, shared, columns, rows)
    assert index_names(store_engine, "audit") == names
    with store_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(audit)
                           .where(audit.c.user_name == "u7")) == 1
        if sqlite:
            plan = " ".join(r[-1] for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM audit WHERE user_name = 'u7'"))
            assert "ix_audit_user" in plan

    # A table that already holds as many rows as the load adds keeps its indexes.
    with store_engine.begin() as conn, bulk.indexes_rebuilt(conn, audit, 30) as dropped:
        assert dropped is False
        assert index_names(store_engine, "audit") == names
    # So does a small load, whatever the table holds.
    monkeypatch.setattr(bulk, "REBUILD_MIN_ROWS", 1000)
    with store_engine.begin() as conn, bulk.indexes_rebuilt(conn, audit, 999) as dropped:
        assert dropped is False


def test_foreign_keys_unchecked_for_one_transaction_on_sqlite_only(
        store_engine: Engine) -> None:
    sqlite = store_engine.dialect.name == "sqlite"
    with store_engine.connect() as conn:
        with bulk.foreign_keys_unchecked(conn):
            if sqlite:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
                add_membership(conn, "no-such-group", "no-such-user")  # not checked
                conn.rollback()
            else:
                with pytest.raises(IntegrityError):
                    add_membership(conn, "no-such-group", "no-such-user")
                conn.rollback()
        if sqlite:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            # Inside a transaction the setting cannot change: checks stay on.
            add_group(conn, "eng")
            with bulk.foreign_keys_unchecked(conn):
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                with pytest.raises(IntegrityError):
                    add_membership(conn, "no-such-group", "no-such-user")
            conn.rollback()
    with pytest.raises(IntegrityError), store_engine.begin() as conn:
        add_membership(conn, "no-such-group", "no-such-user")


def test_audit_file_lines_are_the_store_records(store_engine: Engine, audit_file: Path) -> None:
    writer = AuditWriter(audit_file)
    records = [
        Audit(actor="sync:corp", op="change_role", run_id="r", group="g", user="ü",
              rule="x", source="corp", before={"role": "member"},
              after={"role": "owner", "nested": {"a": [1, "ü"]}}, extra={"why": "test"}),
        Audit(actor="sync:corp", op="run_failed", run_id="r", source="corp", extra={}),
        record("add_member", user="alice", after={"role": "member", "status": "accepted"}),
    ]
    with store_engine.connect() as conn:
        with conn.begin():
            writer.add_all(conn, records)
            writer.flush_rows(conn)
        writer.committed(store_engine)
    lines = audit_file_lines(audit_file)
    assert lines == [r.to_json() for r in audit_rows(store_engine)]
    assert lines == [r.to_json() for r in records]
    assert "extra" not in lines[1]


def test_a_batch_keeps_what_its_records_share_once(store_engine: Engine) -> None:
    """write_batch: a value every record has goes to the batch, so does the commonest of a
    column no record leaves empty; the records read back whole, in order."""
    stamp = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    shared = {"ts": bulk.timestamp(store_engine.dialect, stamp), "run_id": "r", "actor": "a",
              "op": "add_member", "source": "s"}
    member, owner = '{"role": "member"}', '{"role": "owner"}'
    columns = ("group_name", "user_name", "rule", "before", "after", "extra")
    rows = [("g", "u1", "x", None, member, None), ("g", "u2", "x", '{"b": 1}', owner, None),
            ("h", "u3", "x", None, member, None), ("h", "u4", "x", None, member, None)]
    with store_engine.begin() as conn:
        write_batch(conn, shared, columns, rows)
        write_batch(conn, shared, columns, [("g", "u5", None, None, None, '{"e": "ü"}')])
    b, a = tables["audit_batches"].c, tables["audit"].c
    with store_engine.connect() as conn:
        batches = conn.execute(select(b.rule, b.before, b.after, b.extra).order_by(b.id)).all()
        stored = conn.execute(select(a.rule, a.before, a.after).order_by(a.id)).all()
    assert [tuple(r) for r in batches] == [("x", None, {"role": "member"}, None),
                                           (None, None, None, {"e": "ü"})]
    # the rule and the commonest "after" are the batch's; "before", empty in some, is not
    assert [tuple(r) for r in stored] == [(None, None, None), (None, {"b": 1}, {"role": "owner"}),
                                          (None, None, None), (None, None, None),
                                          (None, None, None)]
    got = [(r.group, r.user, r.rule, r.before, r.after, r.extra, r.ts, r.op)
           for r in audit_rows(store_engine)]
    assert got == [(g, u, rule, json.loads(bf) if bf else None, json.loads(af) if af else None,
                    json.loads(ex) if ex else None, stamp, "add_member")
                   for g, u, rule, bf, af, ex in (*rows, ("g", "u5", None, None, None,
                                                          '{"e": "ü"}'))]


def test_insert_rows_with_shared_values(store_engine: Engine) -> None:
    """Values the rows share (given as constants, or found in every row) are stored as
    given; SQLite writes them as literals, quotes and all."""
    batches_t = tables["audit_batches"]
    stamp = bulk.timestamp(store_engine.dialect, datetime(2026, 11, 22, 13, 0, tzinfo=UTC))
    shared = {"ts": stamp, "run_id": "r'1", "actor": "sync:x", "source": None, "extra": None}
    columns = ("op", "rule", "before", "after")
    batches = [
        [("add_member", "rule 'a'", None, '{"x": 1}')] * 3,         # every column the same
        [("add_member", f"r{i}", None, None) for i in range(3)],    # one column varies
        [(f"op{i}", "r", None, f'{{"n": {i}}}') for i in range(3)],
        [("solo", None, None, None)],                                # a single row
    ]
    with store_engine.begin() as conn:
        for rows in batches:
            insert_rows(conn, batches_t, columns, rows, shared)
    b = batches_t.c
    with store_engine.connect() as conn:
        back = conn.execute(select(b.run_id, b.actor, b.source, b.extra, b.op, b.rule,
                                   b.before, b.after).order_by(b.id)).all()
    expected = [("r'1", "sync:x", None, None, o, r, bf, json.loads(af) if af else None)
                for rows in batches for o, r, bf, af in rows]
    assert [tuple(r) for r in back] == expected


def test_stream_tuples_reads_what_execute_reads(store_engine: Engine) -> None:
    """stream_tuples gives the rows execute gives, for values SQLite gets as literals
    (quotes, the member-list separator, an IN list, NULL) and for one it keeps bound
    (bytes, which SQLAlchemy would write as a text literal)."""
    table = tables["audit_batches"]  # a table of text columns
    a = table.c
    stamp = bulk.timestamp(store_engine.dialect, datetime(2026, 11, 23, 5, 0, tzinfo=UTC))
    rows = [("g'1", "u\x1f1", "r"), ("g2", "u2", "r'"), ("g3", "u3", None)]
    with store_engine.begin() as conn:
        insert_rows(conn, table, ("op", "actor", "rule"), rows, {"ts": stamp})
    queries = [
        select(a.op, a.actor).where(a.rule == "r'").order_by(a.id),
        select(a.op, func.count()).where(a.op.in_(["g'1", "g3", "x"]))
        .group_by(a.op).order_by(a.op),
        select(a.actor).where(a.rule.is_(None) | (a.actor == "u\x1f1")).order_by(a.id),
        select(func.group_concat(a.actor, "\x1f")) if store_engine.dialect.name == "sqlite"
        else select(func.string_agg(a.actor, "\x1f")),
        select(a.op).where(func.length(a.op) != func.length(b"'\x00xy"))
        .order_by(a.id),
    ]
    with store_engine.connect() as conn:
        for query in queries:
            expected = [tuple(r) for r in conn.execute(query)]
            assert expected, query
            assert list(bulk.stream_tuples(conn, query, batch=2)) == expected
    assert expected == [("g'1",), ("g2",), ("g3",)]


def test_new_ids_are_random_version_4_uuids() -> None:
    ids = new_ids(2000)
    assert len(set(ids)) == 2000
    for value in ids[:50]:
        parsed = uuid.UUID(value)
        assert (str(parsed), parsed.version, parsed.variant) == (value, 4, uuid.RFC_4122)
    assert new_ids(0) == []


def test_the_mirror_reads_back_what_it_stored_and_user_rows_of_earlier_versions(
        store_engine: Engine) -> None:
    """Users are stored as JSON lists now; rows stored as objects (before) still read."""
    from syncd import mirror
    from syncd.index import SourceIndex
    from syncd.source import Delta, SourceGroup, SourceUser

    def users() -> list[SourceUser]:
        return [SourceUser("id-ann", "uid=ann,dc=x", "ann", "ann@x.org", "Ann Ö", False, True),
                SourceUser("id-bob", "uid=bob,dc=x", "bob", None, None, True, False)]

    def groups() -> list[SourceGroup]:
        return [SourceGroup("id-g", "cn=g,dc=x", "cn=G,dc=x", "g", "d", {"owner": ["x"]},
                            ["uid=ann,dc=x", "uid=bob,dc=x", "uid=gone,dc=x"], [])]

    with store_engine.begin() as conn:
        mirror.store_snapshot(conn, "c", SourceIndex.build(users(), groups()), frozenset())
        # bob's row as versions before wrote it: an object
        m = tables["mirror_users"].c
        old = {"ref": "uid=bob,dc=x", "user_name": "bob", "email": None,
               "display_name": None, "disabled": True, "external": False}
        conn.execute(update(tables["mirror_users"]).where(m.external_id == "id-bob")
                     .values(data=old))
    with store_engine.connect() as conn:
        assert list(mirror.iter_users(conn, "c")) == users()
        index, touched = mirror.with_delta(conn, "c", Delta(
            users=[], groups=[], removed_users=["id-bob"], removed_groups=[], cursor={}))
    assert [u.user_name for u in index.users] == ["ann"]
    assert touched.removed_users == {"id-bob"}
    assert index.member_refs(0) == ["uid=ann,dc=x", "uid=bob,dc=x", "uid=gone,dc=x"]
    assert index.members[0].dangling == ["uid=bob,dc=x", "uid=gone,dc=x"]


def test_a_delta_reads_the_saved_index_while_it_is_the_mirrors_state(
        store_engine: Engine) -> None:
    from syncd import mirror
    from syncd.index import SourceIndex
    from syncd.source import Delta, SourceGroup, SourceUser

    def delta() -> Delta:
        return Delta(users=[SourceUser("id-cy", "uid=cy,dc=x", "cy")],
                     groups=[SourceGroup("id-h", "cn=h,dc=x", "cn=h,dc=x", "h",
                                         members=["uid=cy,dc=x", "uid=ann,dc=x"])],
                     removed_users=["id-bob"], removed_groups=[], cursor={})

    users = [SourceUser("id-ann", "uid=ann,dc=x", "ann"), SourceUser("id-bob", "uid=bob,dc=x",
                                                                      "bob")]
    groups = [SourceGroup("id-g", "cn=g,dc=x", "cn=g,dc=x", "g", members=["uid=bob,dc=x"])]
    with store_engine.begin() as conn:
        mirror.store_snapshot(conn, "c", SourceIndex.build(users, groups), frozenset())
        from_rows, _ = mirror.with_delta(conn, "c", delta())
        # take the rows away: a delta still sees them, through the saved index
        conn.execute(delete(tables["mirror_users"]))
        saved, touched = mirror.with_delta(conn, "c", delta())
        assert [u.user_name for u in saved.users] == ["ann", "cy"]
        assert [g.name for g in saved.groups] == ["g", "h"]
        assert saved.members[0].dangling == ["uid=bob,dc=x"]
        assert [saved.users[p].user_name for p in saved.members[1].users] == ["cy", "ann"]
        assert (touched.users, touched.removed_users) == ({"id-cy"}, {"id-bob"})
        assert [u.user_name for u in from_rows.users] == ["ann", "cy"]
        # once the mirror's state moves on without it, the saved index is not used
        s = tables["mirror_state"].c
        conn.execute(update(tables["mirror_state"]).where(s.connector == "c")
                     .values(updated_at=datetime(2030, 1, 1, tzinfo=UTC)))
        assert mirror.saved_index(conn, "c") is None
        rows, _ = mirror.with_delta(conn, "c", delta())
        assert [u.user_name for u in rows.users] == ["cy"]  # the rows, which are gone
        # a connector without deltas keeps no saved index, and an old one goes
        mirror.store_snapshot(conn, "c", SourceIndex.build(users, groups), frozenset(),
                              save_index=False)
        assert conn.execute(select(func.count()).select_from(tables["mirror_index"])
                            ).scalar() == 0
