"""The audit file is caught up from the store (syncd.auditfile), on SQLite and PostgreSQL:
whatever happened between a commit and the file, it ends equal to the store's records,
never with a line twice; and record ids grow in commit order, even with two writers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd.audit import Audit, AuditWriter, records
from syncd.auditfile import AuditFile, file_line
from syncd.errors import UsageError
from syncd.store.schema import tables


def commit(engine: Engine, writer: AuditWriter, *users: str) -> None:
    """One transaction of ``add_member`` records; the file is left as the writer leaves it
    (the caller decides whether ``committed`` runs, as a process killed after its commit
    would not)."""
    with engine.connect() as conn, conn.begin():
        writer.begin(conn)
        for user in users:
            writer.add(conn, Audit(actor="cli:tester", op="add_member", group="eng",
                                   user=user, after={"role": "member", "status": "accepted"}))
        writer.flush_rows(conn)


def store_lines(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = records()
        return [json.loads(file_line(Audit.from_row(r)))
                for r in conn.execute(query.order_by(query.selected_columns.id))]


def file_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def users_in(path: Path) -> list[str]:
    return [r["user"] for r in file_lines(path)]


@pytest.fixture
def file(tmp_path: Path) -> Path:
    return tmp_path / "log" / "audit.jsonl"


def test_records_committed_before_a_kill_reach_the_file_on_the_next_catch_up(
        store_engine: Engine, file: Path) -> None:
    writer = AuditWriter(file)
    commit(store_engine, writer, "ann")
    writer.committed(store_engine)
    commit(store_engine, writer, "ben", "cat")  # killed here: committed, never written
    assert users_in(file) == ["ann"]
    writer.catch_up(store_engine)  # the next run, before it applies anything
    assert users_in(file) == ["ann", "ben", "cat"]
    writer.catch_up(store_engine)
    writer.committed(store_engine)
    assert file_lines(file) == store_lines(store_engine)  # nothing twice


def test_an_append_killed_half_way_is_written_again_once(store_engine: Engine,
                                                         file: Path) -> None:
    writer = AuditWriter(file)
    commit(store_engine, writer, "ann")
    writer.committed(store_engine)
    commit(store_engine, writer, "ben", "cat")
    # the append of ben and cat died after a line and a half, before its mark
    ben, cat = (file_line(Audit(actor="cli:tester", op="add_member", user=u)) for u in
                ("ben", "cat"))
    with file.open("a", encoding="utf-8") as fh:
        fh.write(ben + cat[:20])
    writer.catch_up(store_engine)
    assert file_lines(file) == store_lines(store_engine)
    assert users_in(file) == ["ann", "ben", "cat"]


def test_a_rotated_file_gets_only_what_came_after(store_engine: Engine, file: Path) -> None:
    writer = AuditWriter(file)
    commit(store_engine, writer, "ann")
    writer.committed(store_engine)
    file.rename(file.with_suffix(".1"))  # logrotate's rename, then a new file
    commit(store_engine, writer, "ben")
    writer.committed(store_engine)
    assert users_in(file) == ["ben"]
    # copytruncate: the same file, emptied in place
    with file.open("r+") as fh:
        fh.truncate(0)
    commit(store_engine, writer, "cat")
    writer.committed(store_engine)
    assert users_in(file) == ["cat"]
    assert users_in(file.with_suffix(".1")) == ["ann"]


def test_a_file_written_before_marks_existed_goes_on_after_its_last_line(
        store_engine: Engine, file: Path, tmp_path: Path) -> None:
    commit(store_engine, AuditWriter(None), "ann", "ben", "cat")
    # an earlier syncd wrote ann and ben, then was killed before cat's line
    file.parent.mkdir(parents=True)
    file.write_text("".join(file_line(Audit.from_row(r)) for r in _rows(store_engine)[:2]),
                    encoding="utf-8")
    AuditWriter(file).catch_up(store_engine)
    assert file_lines(file) == store_lines(store_engine)
    # a file of other lines is not the store's: every record follows them
    other = tmp_path / "other.jsonl"
    other.write_text('{"op": "earlier"}\n', encoding="utf-8")
    AuditWriter(other).catch_up(store_engine)
    assert file_lines(other) == [{"op": "earlier"}, *store_lines(store_engine)]


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        query = records()
        return list(conn.execute(query.order_by(query.selected_columns.id)))


def test_an_unwritable_file_stops_a_run_before_it_applies_and_is_caught_up_later(
        store_engine: Engine, tmp_path: Path) -> None:
    blocker = tmp_path / "log"
    blocker.write_text("a file where the audit file's folder should be", encoding="utf-8")
    file = blocker / "audit.jsonl"  # unwritable for every user, root too
    writer = AuditWriter(file)
    with pytest.raises(UsageError, match=r"audit.file .*/log/audit.jsonl: cannot write it: .*"
                                         r"nothing was changed"):
        writer.catch_up(store_engine)
    commit(store_engine, writer, "ann")
    writer.committed(store_engine)  # logged, not raised: the records are in the store
    blocker.unlink()
    writer.committed(store_engine)
    assert users_in(file) == ["ann"]


def test_file_mode_keeps_records_from_other_users(store_engine: Engine, file: Path) -> None:
    writer = AuditWriter(file)
    commit(store_engine, writer, "ann")
    writer.committed(store_engine)
    assert file.stat().st_mode & 0o007 == 0


def test_catch_ups_of_two_writers_take_turns(store_engine: Engine, file: Path) -> None:
    commit(store_engine, AuditWriter(None), *(f"u{i}" for i in range(50)))
    threads = [threading.Thread(target=AuditFile(file).catch_up, args=(store_engine,))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert file_lines(file) == store_lines(store_engine)


@pytest.mark.postgres
def test_ids_grow_in_commit_order_with_two_writers(pg_url: str) -> None:
    """The first writer holds its transaction open; the second, started after it, waits for
    it and so gets the higher ids: a reader that takes "every id above the last" misses
    nothing. (Without the lock, the second would commit ids below the first's.)"""
    from syncd.store.db import open_engine, upgrade

    engine = open_engine(pg_url)
    try:
        upgrade(engine)
        first_in = threading.Event()
        order: list[str] = []

        def first() -> None:
            with engine.connect() as conn, conn.begin():
                writer = AuditWriter(None)
                writer.begin(conn)
                first_in.set()
                time.sleep(1.0)  # the second writer starts meanwhile
                writer.add(conn, Audit(actor="cli:a", op="add_member", user="first"))
                writer.flush_rows(conn)
                order.append("first")

        def second() -> None:
            first_in.wait()
            with engine.connect() as conn, conn.begin():
                writer = AuditWriter(None)
                writer.begin(conn)
                writer.add(conn, Audit(actor="cli:b", op="add_member", user="second"))
                writer.flush_rows(conn)
                order.append("second")

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert order == ["first", "second"]
        with engine.connect() as conn:
            rows = conn.execute(select(tables["audit"].c.id, tables["audit"].c.user_name)
                                .order_by(tables["audit"].c.id)).all()
        assert [r.user_name for r in rows] == ["first", "second"]
    finally:
        engine.dispose()
