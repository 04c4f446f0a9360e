"""Bulk writes on the sync path: rows made driver-ready once and handed to executemany.

SQLAlchemy's per-row work (bind processors for JSON and timestamps, parameter dictionaries)
costs more than the database on a million-row apply. The sync path therefore inserts rows as
tuples of driver-ready values (``timestamp()``, ``json_value()``) with one compiled statement
per batch; updates and deletes, which are few, go through ``plain()`` twins of the tables.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Column, Connection, Dialect, MetaData, Select, Table, insert
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
                rows: list[tuple[Any, ...]]) -> None:
    """INSERT ``rows`` (tuples in ``columns`` order, driver-ready values) in one executemany."""
    if not rows:
        return
    mark = _MARKS.get(conn.dialect.paramstyle)
    if mark is None:  # a driver with another paramstyle: let SQLAlchemy bind
        conn.execute(insert(plain(table)), [dict(zip(columns, r, strict=True)) for r in rows])
        return
    q = conn.dialect.identifier_preparer
    # Names come from our own schema, quoted by the dialect; values are bound parameters.
    sql = (f"INSERT INTO {q.format_table(table)} ({', '.join(q.quote(c) for c in columns)}) "  # noqa: S608
           f"VALUES ({', '.join([mark] * len(columns))})")
    conn.exec_driver_sql(sql, rows)


def stream_tuples(conn: Connection, query: Select[Any], batch: int = 10000,
                  ) -> Iterator[tuple[Any, ...]]:
    """Rows of ``query`` as the driver's plain tuples, fetched in batches, in the
    connection's transaction.

    For columns without result processing (strings, numbers): skips SQLAlchemy's per-row
    work on the hot read of a diff. PostgreSQL gets a server-side cursor, so that a large
    result is never held whole.
    """
    compiled = query.compile(dialect=conn.dialect,
                             compile_kwargs={"render_postcompile": True})
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
