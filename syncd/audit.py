"""Audit records (CONTRACT section 5): one shape, written to the store in the transaction of
the change; the JSON-lines audit file is caught up from the store (``syncd.auditfile``)."""

from __future__ import annotations

import getpass
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import JSON, Connection, Dialect, Engine, Select, func, insert, select, text

from syncd.errors import UsageError
from syncd.store.bulk import hoist_columns, insert_rows, json_value, plain, timestamp
from syncd.store.schema import tables

log = structlog.get_logger("syncd.audit")

RECORDS = tables["audit"]
# pg_advisory_xact_lock's key for ``commit_order`` (any constant of syncd's own)
COMMIT_ORDER_LOCK = 0x73796E63_64617564  # "syncdaud"
BATCHES = tables["audit_batches"]
# A record's values in the store's row order, as the writer queues them.
ROW_COLUMNS = ("ts", "run_id", "actor", "op", "group_name", "user_name", "rule", "source",
               "before", "after", "extra")
# Always the batch's; the batch's when all its records share them; always the record's.
BATCH_COLUMNS = ("ts", "run_id", "actor", "op", "source")
SHARED_COLUMNS = ("rule", "before", "after", "extra")
RECORD_COLUMNS = ("group_name", "user_name")
_BATCH_OF = itemgetter(*(ROW_COLUMNS.index(c) for c in BATCH_COLUMNS))
_RECORD_PART = itemgetter(*(ROW_COLUMNS.index(c) for c in (*RECORD_COLUMNS, *SHARED_COLUMNS)))


def records() -> Select[Any]:
    """The audit records, whole (labelled as ``ROW_COLUMNS``, with ``id``), to filter and
    order: each record joined with its batch."""
    a, b = RECORDS.c, BATCHES.c
    return select(
        a.id, b.ts, b.run_id, b.actor, b.op, a.group_name, a.user_name,
        func.coalesce(a.rule, b.rule).label("rule"), b.source,
        *(func.coalesce(a[c], b[c], type_=JSON).label(c) for c in ("before", "after",
                                                                  "extra")),
    ).join_from(RECORDS, BATCHES, a.batch_id == b.id)


def write_batch(conn: Connection, shared: dict[str, Any], columns: Sequence[str],
                rows: list[tuple[Any, ...]]) -> None:
    """Insert one batch of records: ``shared`` holds the driver-ready values of
    ``BATCH_COLUMNS`` (and may hold ones of ``SHARED_COLUMNS``) for all of them, ``rows``
    the values of ``columns`` (the others of ``RECORD_COLUMNS`` and ``SHARED_COLUMNS``).
    ``write_columns`` says what goes where."""
    if not rows:
        return
    values = [list(map(itemgetter(i), rows)) for i in range(len(columns))]
    write_columns(conn, shared, dict(zip(columns, values, strict=True)))


def write_columns(conn: Connection, shared: dict[str, Any], columns: dict[str, list[Any]],
                  ) -> None:
    """``write_batch`` of records given as columns (name -> one value a record).

    A column of ``SHARED_COLUMNS`` that holds one value in every record goes to the batch.
    So does the commonest value of one that no record leaves empty, and the records that
    hold it leave it empty: an empty value of a record then means the batch's, and only then
    (a first sync's 1.9 million ``after`` are ``{"role": "member", "status": "accepted"}``
    but for owners and disabled users).
    """
    count = len(next(iter(columns.values()), ()))
    if not count:
        return
    names, values, batch = hoist_columns(columns, shared, only=SHARED_COLUMNS)
    for i, name in enumerate(names):
        if name in SHARED_COLUMNS and None not in values[i]:
            common = Counter(values[i]).most_common(1)[0][0]
            batch[name] = common
            values[i] = list(map({common: None}.get, values[i], values[i]))
    batch_id = conn.execute(insert(plain(BATCHES)).values(batch)
                            .returning(plain(BATCHES).c.id)).scalar_one()
    rows = list(zip(*values, strict=True)) if values else [()] * count
    insert_rows(conn, RECORDS, names, rows, {"batch_id": batch_id})


def cli_actor() -> str:
    """``cli:USER`` for admin commands, with the OS user name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}"


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Audit:
    """One audit record."""

    actor: str
    op: str
    run_id: str | None = None
    group: str | None = None
    user: str | None = None
    rule: str | None = None
    source: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        """The record as CONTRACT section 5 shows it (``extra`` only when set)."""
        out: dict[str, Any] = {
            "ts": _ts(self.ts), "run_id": self.run_id, "actor": self.actor, "op": self.op,
            "group": self.group, "user": self.user, "rule": self.rule, "source": self.source,
            "before": self.before, "after": self.after,
        }
        if self.extra:
            out["extra"] = self.extra
        return out

    def to_row(self, dialect: Dialect) -> tuple[Any, ...]:
        """The record as a driver-ready row of the ``audit`` table, in ``ROW_COLUMNS`` order."""
        return (timestamp(dialect, self.ts), self.run_id, self.actor, self.op, self.group,
                self.user, self.rule, self.source, json_value(self.before),
                json_value(self.after), json_value(self.extra))

    @classmethod
    def from_row(cls, row: Any) -> Audit:
        """Rebuild a record read from the ``audit`` table."""
        return cls(actor=row.actor, op=row.op, run_id=row.run_id, group=row.group_name,
                   user=row.user_name, rule=row.rule, source=row.source, before=row.before,
                   after=row.after, extra=row.extra, ts=row.ts)


def commit_order(conn: Connection) -> None:
    """Hold, until ``conn``'s transaction ends, the lock that makes audit record ids grow in
    commit order: the audit file is caught up by "every id above the last one written"
    (``syncd.auditfile``). SQLite lets one transaction write at a time anyway; PostgreSQL
    hands out ids from a sequence as statements run, so that without this a transaction
    could commit a record below one already written out. Taking it again is free."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": COMMIT_ORDER_LOCK})


class AuditWriter:
    """Writes records into the store in the caller's transaction; the audit file, when one
    is configured, is caught up from the store (``syncd.auditfile``).

    A writing transaction calls ``begin`` first, and ``committed`` or ``rolled_back`` at
    its end. Records reach the file only from the store, after their transaction committed:
    the file never tells of a change that was rolled back, and a process killed after the
    commit leaves the lines to the next catch-up.
    """

    def __init__(self, file: Path | None, batch_size: int = 1000) -> None:
        self.file = file
        self.batch_size = batch_size
        self._pending_rows: list[tuple[Any, ...]] = []

    def begin(self, conn: Connection) -> None:
        """A transaction that will write records starts: take ``commit_order`` before it
        writes anything else, so that it never waits for the lock while holding rows
        another writer waits for."""
        commit_order(conn)

    def catch_up(self, engine: Engine) -> None:
        """Bring the audit file up to the store before anything is applied; a file that
        cannot be written is an error of the config (nothing is changed)."""
        try:
            self._catch_up(engine)
        except OSError as exc:
            raise UsageError(f"audit.file {self.file}: cannot write it: "
                             f"{exc.strerror or exc}; nothing was changed") from None

    def _catch_up(self, engine: Engine) -> None:
        from syncd.auditfile import AuditFile  # it reads the records back with ``records``

        if self.file is not None:
            AuditFile(self.file).catch_up(engine)

    def add(self, conn: Connection, record: Audit) -> None:
        """Queue one record in the store (flushed in batches on ``conn``)."""
        self._pending_rows.append(record.to_row(conn.dialect))
        if len(self._pending_rows) >= self.batch_size:
            self.flush_rows(conn)

    def add_columns(self, conn: Connection, constants: dict[str, Any],
                    columns: dict[str, list[Any]]) -> None:
        """Insert records now, given as ``constants`` (the columns every record shares, with
        driver-ready values; ``BATCH_COLUMNS`` at least) and ``columns`` (name -> one value
        a record) of the others: the sync apply's path for a batch of changes of one kind,
        built column by column."""
        self.flush_rows(conn)  # records queued earlier come first
        commit_order(conn)
        write_columns(conn, constants, columns)

    def add_all(self, conn: Connection, records: Iterable[Audit]) -> None:
        """Queue several records."""
        for record in records:
            self.add(conn, record)

    def flush_rows(self, conn: Connection) -> None:
        """Insert the queued rows, one batch for each run of them that shares time, run,
        actor, op and source; call before the transaction commits."""
        if self._pending_rows:
            commit_order(conn)
            for shared, run in groupby(self._pending_rows, key=_BATCH_OF):
                write_batch(conn, dict(zip(BATCH_COLUMNS, shared, strict=True)),
                            (*RECORD_COLUMNS, *SHARED_COLUMNS), list(map(_RECORD_PART, run)))
            self._pending_rows = []

    def committed(self, engine: Engine) -> None:
        """The transaction committed: catch the audit file up. A failure to write it is
        logged; the records are in the store and the next catch-up writes them."""
        try:
            self._catch_up(engine)
        except OSError as exc:
            log.error("audit.file_behind", path=str(self.file), error=exc.strerror or str(exc))

    def rolled_back(self) -> None:
        """The transaction rolled back: forget its queued records."""
        self._pending_rows = []
