"""The apply writes a change, and its audit record, only when the row it names really
changes as the plan saw it; otherwise the whole transaction rolls back (``StaleChange``).
On SQLite and PostgreSQL, with the diff's store helpers of ``test_diff``."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from test_diff import (  # noqa: F401 (engine is a fixture)
    CONNECTOR,
    GROUPS,
    MEMBERSHIPS,
    add_group,
    add_member,
    add_user,
    engine,
    memberships,
    synced_group,
    user_id,
)

from syncd.apply import Applier
from syncd.audit import AuditWriter, records
from syncd.errors import StaleChange
from syncd.existing import ExistingState
from syncd.plan import (
    ArchiveGroup,
    Change,
    ChangeRole,
    DeleteGroup,
    RemoveMember,
    RemoveMemberWithGroup,
    SetMemberStatus,
    UpdateGroup,
)


def apply(engine: Engine, changes: list[Change]) -> None:  # noqa: F811
    """Apply ``changes`` in one transaction and commit it, as a sync does."""
    with engine.connect() as conn:
        existing = ExistingState(conn, CONNECTOR)
        try:
            Applier(conn, CONNECTOR, "run-1", AuditWriter(None), existing).apply(changes)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def audit_ops(engine: Engine) -> list[tuple[str, str | None, str | None]]:  # noqa: F811
    with engine.connect() as conn:
        whole = records().subquery()
        return [tuple(r) for r in conn.execute(select(
            whole.c.op, whole.c.group_name, whole.c.user_name).order_by(whole.c.id))]


def group_id(engine: Engine, name: str) -> str:  # noqa: F811
    with engine.connect() as conn:
        found = conn.execute(select(GROUPS.c.id).where(GROUPS.c.name == name)).scalar()
    assert found is not None
    return str(found)


def refused(engine: Engine, changes: list[Change], message: str) -> None:  # noqa: F811
    """The apply refuses ``changes``, writes no record, and changes nothing."""
    with engine.connect() as conn:
        before = (conn.execute(select(GROUPS).order_by(GROUPS.c.id)).all(),
                  conn.execute(select(MEMBERSHIPS).order_by(*MEMBERSHIPS.primary_key)).all())
    with pytest.raises(StaleChange, match=message):
        apply(engine, changes)
    with engine.connect() as conn:
        after = (conn.execute(select(GROUPS).order_by(GROUPS.c.id)).all(),
                 conn.execute(select(MEMBERSHIPS).order_by(*MEMBERSHIPS.primary_key)).all())
    assert after == before
    assert audit_ops(engine) == []


def test_a_removal_of_a_membership_already_gone_is_refused(engine: Engine) -> None:  # noqa: F811
    gid = synced_group(engine, "eng", {"alice": "member", "bob": "member"})
    with engine.begin() as conn:  # someone else removed bob meanwhile
        conn.execute(MEMBERSHIPS.delete().where(MEMBERSHIPS.c.user_id == user_id(engine, "bob")))
    refused(engine, [RemoveMember("eng", "alice", "r", gid), RemoveMember("eng", "bob", "r", gid)],
            r"1 of 2 remove_member change\(s\) of group 'eng' found nothing to change")
    assert memberships(engine, "eng") == {"alice": ("member", "accepted", "sync")}


def test_a_manual_membership_is_never_removed_as_a_synced_one(engine: Engine) -> None:  # noqa: F811
    gid = synced_group(engine, "eng", {"alice": "member"})
    add_member(engine, gid, add_user(engine, "bob"))  # manual
    refused(engine, [RemoveMember("eng", "bob", "r", gid)], "found nothing to change")


def test_a_role_or_status_already_changed_is_refused(engine: Engine) -> None:  # noqa: F811
    gid = synced_group(engine, "eng", {"alice": "owner"})
    refused(engine, [ChangeRole("eng", "alice", "member", "facilitator", "r", gid)],
            "change_role")
    refused(engine, [SetMemberStatus("eng", "alice", "deactivated", "accepted", "r", gid)],
            "set_member_status")


def test_a_manual_group_is_never_deleted_archived_or_updated(engine: Engine) -> None:  # noqa: F811
    gid = add_group(engine, "local")
    add_member(engine, gid, add_user(engine, "alice"))
    refused(engine, [DeleteGroup("local", CONNECTOR, "r", gid)], "delete_group")
    refused(engine, [RemoveMemberWithGroup("local", "alice", "r", gid, "member", "accepted",
                                           "manual"), DeleteGroup("local", CONNECTOR, "r", gid)],
            "remove_member")
    refused(engine, [ArchiveGroup("local", CONNECTOR, "r", gid)], "archive_group")
    refused(engine, [UpdateGroup("local", CONNECTOR, "r", {"description": {
        "old": "", "new": "mine now"}}, gid)], "update_group")


def test_an_update_finds_its_group_only_as_the_plan_saw_it(engine: Engine) -> None:  # noqa: F811
    gid = synced_group(engine, "eng", {}, description="now")
    refused(engine, [UpdateGroup("eng", CONNECTOR, "r", {"description": {
        "old": "before", "new": "after"}}, gid)], "update_group")
    refused(engine, [UpdateGroup("eng", CONNECTOR, "r", {"name": {
        "old": "eng", "new": "engineering"}, "description": {"old": "then", "new": "x"}},
        gid)], "update_group")
    apply(engine, [UpdateGroup("eng", CONNECTOR, "r", {"description": {
        "old": "now", "new": "after"}}, gid)])
    assert audit_ops(engine) == [("update_group", "eng", None)]


def test_an_archive_twice_is_refused(engine: Engine) -> None:  # noqa: F811
    gid = synced_group(engine, "eng", {}, archived=True)
    refused(engine, [ArchiveGroup("eng", CONNECTOR, "r", gid)], "archive_group")


def test_a_removal_with_its_group_needs_the_group_deleted(engine: Engine) -> None:  # noqa: F811
    gid = synced_group(engine, "eng", {"alice": "member"})
    refused(engine, [RemoveMemberWithGroup("eng", "alice", "r", gid, "member", "accepted",
                                           "sync")], "the plan does not delete")


def test_a_membership_the_plan_does_not_list_stops_the_group_deletion(
        engine: Engine) -> None:  # noqa: F811
    gid = synced_group(engine, "eng", {"alice": "member"})
    add_member(engine, gid, add_user(engine, "bob"))  # added by hand after the plan was made
    refused(engine, [RemoveMemberWithGroup("eng", "alice", "r", gid, "member", "accepted",
                                           "sync"), DeleteGroup("eng", CONNECTOR, "r", gid)],
            "not in the plan")


def test_a_deleted_group_takes_its_manual_memberships_each_with_a_record(
        engine: Engine) -> None:  # noqa: F811
    gid = synced_group(engine, "eng", {"alice": "member"})
    add_member(engine, gid, add_user(engine, "bob"), role="owner", status="invited")
    apply(engine, [RemoveMemberWithGroup("eng", "alice", "r", gid, "member", "accepted", "sync"),
                   RemoveMemberWithGroup("eng", "bob", "r", gid, "owner", "invited", "manual"),
                   DeleteGroup("eng", CONNECTOR, "r", gid)])
    assert audit_ops(engine) == [("remove_member", "eng", "alice"),
                                 ("remove_member", "eng", "bob"), ("delete_group", "eng", None)]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(MEMBERSHIPS)) == 0
        whole = records().subquery()
        befores: dict[Any, Any] = dict(conn.execute(
            select(whole.c.user_name, whole.c.before).where(whole.c.op == "remove_member")).all())
    assert befores["bob"] == {"role": "owner", "status": "invited", "origin": "manual"}
