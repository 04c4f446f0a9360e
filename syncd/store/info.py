"""The store's own identity (``StoreInfo``): made with the store, never changed."""

from __future__ import annotations

from sqlalchemy import Connection, select

from syncd.store.schema import tables

STORE_INFO = tables["store_info"]


def store_id(conn: Connection) -> str:
    """The id of the store ``conn`` is on."""
    found = conn.execute(select(STORE_INFO.c.id).limit(1)).scalar()
    assert found is not None, "every store at revision 0006 or later has one"
    return str(found)
