"""Bulk writes on the sync path: rows made driver-ready once and handed to executemany.

SQLAlchemy's per-row work (bind processors for JSON and timestamps, parameter dictionaries)
costs more than the database on a million-row apply. The sync path therefore inserts rows as
tuples of driver-ready values (``timestamp()``, ``json_value()``) with one compiled statement
per batch; updates and deletes, which are few, go through ``plain()`` twins of the tables.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from operator import countOf, itemgetter
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Dialect,
    MetaData,
    Select,
    String,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.exc import CompileError
from sqlalchemy.types import NullType

_PLAIN = MetaData()
_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@cache
def plain(table: Table) -> Table:
    """A twin of ``table`` whose columns pass values to the driver unchanged."""
    return Table(table.name, _PLAIN, *(Column(c.name, NullType()) for c in table.columns))


_last_stamp: tuple[datetime, str] | None = None


def timestamp(dialect: Dialect, value: datetime) -> Any:
    """A UTC timestamp as the dialect stores it (SQLite: SQLAlchemy's text format)."""
    global _last_stamp  # noqa: PLW0603  (one-entry cache: a batch shares its timestamp)
    if dialect.name != "sqlite":
        return value
    last = _last_stamp
    if last is not None and last[0] is value:
        return last[1]
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    _last_stamp = (value, text)
    return text


_JSON_CACHE: dict[tuple[Any, ...], str] = {}


def json_value(value: Any) -> str | None:
    """A JSON column's value: encoded text, or SQL NULL for None.

    Audit records repeat a few small shapes millions of times (``{"role": "member",
    "status": "accepted"}``): flat dicts of hashable values are encoded once.
    """
    if value is None:
        return None
    try:
        key = tuple(value.items()) if type(value) is dict else None
        cached = _JSON_CACHE.get(key) if key is not None else None
    except TypeError:  # a value that cannot be hashed (a list, a dict)
        key = cached = None
    if cached is not None:
        return cached
    text = json.dumps(value, ensure_ascii=False)
    if key is not None:
        if len(_JSON_CACHE) >= 4096:
            _JSON_CACHE.clear()
        _JSON_CACHE[key] = text
    return text


def insert_rows(conn: Connection, table: Table, columns: Sequence[str],
                rows: list[tuple[Any, ...]],
                constants: Mapping[str, Any] | None = None) -> None:
    """INSERT ``rows`` (tuples in ``columns`` order, driver-ready values) in one executemany.

    ``constants`` are columns with one value for every row, given once. SQLite gets them as
    literals in the statement, quoted by the dialect: there a bound parameter costs more
    than storing its value (a million audit rows took 8.0 s with eleven parameters each,
    3.0 s with four and the rest as literals; docs/performance.md). Columns that hold one
    text in every row of the batch are treated the same way (``_hoist``). Other drivers get
    the constants as parameters of each row.
    """
    if not rows:
        return
    constants = constants or {}
    mark = _MARKS.get(conn.dialect.paramstyle)
    if mark == "?" and len(rows) > 1:
        columns, rows, constants = hoist(columns, rows, constants)
    literals = _literals(conn.dialect, constants) if mark == "?" else None
    if literals is None and constants:  # bound in every row
        columns = (*columns, *constants)
        extra = tuple(constants.values())
        rows = [r + extra for r in rows]
    if mark is None:  # a driver with another paramstyle: let SQLAlchemy bind
        conn.execute(insert(plain(table)), [dict(zip(columns, r, strict=True)) for r in rows])
        return
    names, values = list(columns), [mark] * len(columns)
    for name, literal in (literals or {}).items():
        names.append(name)
        values.append(literal)
    q = conn.dialect.identifier_preparer
    # Names come from our own schema, quoted by the dialect; values are bound parameters or
    # literals quoted by the dialect's own literal processor.
    sql = (f"INSERT INTO {q.format_table(table)} ({', '.join(q.quote(c) for c in names)}) "  # noqa: S608
           f"VALUES ({', '.join(values)})")
    conn.exec_driver_sql(sql, rows)


def hoist(columns: Sequence[str], rows: list[tuple[Any, ...]], constants: Mapping[str, Any],
          only: Sequence[str] | None = None,
          ) -> tuple[Sequence[str], list[tuple[Any, ...]], dict[str, Any]]:
    """Move the columns (of ``only``, or all) that hold one text (or NULL) in every row to
    the constants.

    A sync's batch mostly shares its rule, role and status: each column hoisted is one bound
    parameter fewer per row. Columns whose first, middle and last values differ are passed
    over at once; the others take one count in C.
    """
    keep: list[int] = []
    hoisted = dict(constants)
    first, middle, last = rows[0], rows[len(rows) // 2], rows[-1]
    for i, name in enumerate(columns):
        value = first[i]
        if ((only is None or name in only) and (value is None or isinstance(value, str))
                and middle[i] == value and last[i] == value
                and countOf(map(itemgetter(i), rows), value) == len(rows)):
            hoisted[name] = value
            continue
        keep.append(i)
    if len(keep) == len(columns):
        return columns, rows, hoisted
    if not keep:
        rows = [()] * len(rows)
    elif len(keep) == 1:
        pos = keep[0]
        rows = [(r[pos],) for r in rows]
    else:
        rows = list(map(itemgetter(*keep), rows))
    return [columns[i] for i in keep], rows, hoisted


def hoist_columns(columns: Mapping[str, list[Any]], constants: Mapping[str, Any],
                  only: Sequence[str] | None = None,
                  ) -> tuple[list[str], list[list[Any]], dict[str, Any]]:
    """``hoist`` for a batch given as columns (name -> values, all of one length): the
    names and values of the columns kept, and the constants with those hoisted.

    A batch built column by column is zipped into rows once, of the columns that vary only,
    instead of into rows of all of them that ``hoist`` takes apart again.
    """
    names: list[str] = []
    kept: list[list[Any]] = []
    hoisted = dict(constants)
    for name, values in columns.items():
        value = values[0] if values else None
        if (values and (only is None or name in only)
                and (value is None or isinstance(value, str))
                and countOf(values, value) == len(values)):
            hoisted[name] = value
            continue
        names.append(name)
        kept.append(values)
    return names, kept, hoisted


_QUOTE = String()


def _literals(dialect: Dialect, constants: Mapping[str, Any]) -> dict[str, str] | None:
    """The constants as SQL literals, or None when one cannot be written as a literal."""
    quote = _QUOTE.literal_processor(dialect)  # type: ignore[no-untyped-call]
    out = {}
    for name, value in constants.items():
        if value is None:
            out[name] = "NULL"
        elif type(value) is int:
            out[name] = str(value)
        elif isinstance(value, str) and "\x00" not in value and quote is not None:
            out[name] = quote(value)
        else:
            return None
    return out


def stream_tuples(conn: Connection, query: Select[Any], batch: int = 10000,
                  ) -> Iterator[tuple[Any, ...]]:
    """Rows of ``query`` as the driver's plain tuples, fetched in batches, in the
    connection's transaction.

    For columns without result processing (strings, numbers): skips SQLAlchemy's per-row
    work on the hot read of a diff. PostgreSQL gets a server-side cursor, so that a large
    result is never held whole. SQLite gets the query's values as literals (``_compiled``).
    """
    compiled = _compiled(conn.dialect, query)
    params = compiled.construct_params()
    args: Any = (tuple(params[k] for k in compiled.positiontup or ())
                 if compiled.positional else params)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    if conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name=f"syncd_{uuid.uuid4().hex}")
    else:
        cursor = dbapi.cursor()
    try:
        cursor.execute(str(compiled), args)
        while rows := cursor.fetchmany(batch):
            yield from rows
    finally:
        cursor.close()


def _compiled(dialect: Dialect, query: Select[Any]) -> Any:
    """``query`` compiled for ``dialect``; on SQLite with its values written as literals.

    SQLite runs such a query markedly faster: the diff's read of 1.9 million memberships
    (``group_concat`` with a separator, ``CASE`` with values) took 2.1 s with those values
    bound and 1.2 s with them as literals (docs/performance.md). Only texts without NUL,
    integers and NULL are written so, quoted by the dialect's own literal processors; a
    query with any other value keeps its parameters.
    """
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    if dialect.name == "sqlite" and all(
            v is None or type(v) in (int, bool) or (type(v) is str and "\x00" not in v)
            for v in compiled.construct_params().values()):
        try:
            return query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        except CompileError:
            pass
    return compiled


# A load of fewer rows than this keeps the indexes as they are.
REBUILD_MIN_ROWS = 50_000


@contextmanager
def indexes_rebuilt(conn: Connection, table: Table, inserts: int) -> Iterator[bool]:
    """SQLite: drop ``table``'s secondary indexes for a load of ``inserts`` rows that at
    least doubles the table, and build them again afterwards, in the same transaction.

    Each of a million rows inserted lands at a random place in an index keyed by a user id
    or a name, and once the index outgrows the page cache that is a page read and write for
    most rows; an index built from scratch sorts its entries once and writes its pages in
    order. On the large benchmark set's first sync it took a third off SQLite's time for
    the memberships and audit tables (docs/performance.md). The DDL is part of the
    transaction (BEGIN is issued first where none is open): a rollback or a crash leaves
    the indexes as they were, and readers of the WAL keep seeing them until the commit.
    PostgreSQL is left alone: DROP INDEX holds an exclusive lock on the table until the
    commit, which would block the application's readers for the whole apply.

    Yields whether the indexes were dropped. They are built again only when the body
    completes; when it raises, the caller rolls the transaction back.
    """
    indexes = sorted(table.indexes, key=lambda i: i.name or "")
    if (conn.dialect.name != "sqlite" or not indexes or inserts < REBUILD_MIN_ROWS
            or _holds_at_least(conn, table, inserts)):
        yield False
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and not getattr(dbapi, "in_transaction", True):
        # The sqlite3 module opens a transaction before DML only: DDL would be committed
        # on its own, and a crash would leave the indexes dropped.
        conn.exec_driver_sql("BEGIN")
    for index in indexes:
        index.drop(conn)
    yield True
    for index in indexes:
        index.create(conn)


def _holds_at_least(conn: Connection, table: Table, rows: int) -> bool:
    """Whether ``table`` has ``rows`` rows or more, reading at most that many."""
    first = select(next(iter(table.primary_key))).limit(rows).subquery()
    counted = conn.execute(select(func.count()).select_from(first)).scalar_one()
    return bool(counted >= rows)


@contextmanager
def foreign_keys_unchecked(conn: Connection) -> Iterator[None]:
    """SQLite: no foreign-key checks on ``conn`` from here to the end of its next
    transaction; on again afterwards.

    A sync's apply writes only ids that it read or made in the same transaction, under
    SQLite's write lock, so the two parent lookups of each membership it inserts can never
    fail; on a large apply they cost as much as the index work of the table itself. SQLite
    cannot change the setting inside a transaction: where one is already open, checks stay
    on. ON DELETE CASCADE does not run without checks either, so the apply deletes a
    group's memberships and audience links itself.
    """
    dbapi = conn.connection.dbapi_connection
    if conn.dialect.name != "sqlite" or dbapi is None or getattr(dbapi, "in_transaction", True):
        yield
        return
    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if dbapi.in_transaction:  # the caller neither committed nor rolled back
            conn.rollback()
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
