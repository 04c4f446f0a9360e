"""The mirror: each connector's last complete snapshot, kept in the store.

It lets a delta be applied to the last full picture, lets ``sync --offline`` and ``explain``
work without the source, and gives the shrink guard its reference count. Rows carry a
digest, so a re-run rewrites only the entries that changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from syncd.errors import UsageError
from syncd.index import SourceIndex
from syncd.source import Delta, SourceGroup, SourceUser
from syncd.store.bulk import insert_rows, plain, stream_tuples
from syncd.store.schema import tables, utcnow

MIRROR_STATE = tables["mirror_state"]
MIRROR_USERS = tables["mirror_users"]
MIRROR_GROUPS = tables["mirror_groups"]
MIRROR_INDEX = tables["mirror_index"]
BATCH = 2000


def _user_data(u: SourceUser) -> list[Any]:
    # SourceUser's fields after external_id, in order: a list decodes faster than an object
    # (stores written before hold objects with these names as keys; both are read)
    return [u.ref, u.user_name, u.email, u.display_name, u.disabled, u.external]


def _group_data(index: SourceIndex, pos: int) -> dict[str, Any]:
    g = index.groups[pos]
    return {"ref": g.ref, "dn": g.dn, "name": g.name, "description": g.description,
            "attributes": g.attributes, "members": index.member_refs(pos),
            "owners": index.owner_refs(pos)}


# one encoder for every row (json.dumps with options makes one a call)
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _encode(data: Any) -> tuple[str, str]:
    """The row's JSON text and its digest."""
    text = _JSON(data)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest(), text


@dataclass(frozen=True)
class MirrorInfo:
    """What a connector's mirror holds."""

    attributes: frozenset[str]
    groups: int
    users: int
    rules: str | None = None  # the fingerprint of the rules its last sync applied

    def missing(self, needed: frozenset[str]) -> frozenset[str]:
        """Group attributes the rules read that the mirror does not hold."""
        return needed - self.attributes


def info(conn: Connection, connector: str) -> MirrorInfo | None:
    """The connector's mirror, or None when it never completed a sync."""
    t = MIRROR_STATE.c
    row = conn.execute(select(t.attributes, t.groups, t.users, t.rules)
                       .where(t.connector == connector)).first()
    if row is None:
        return None
    return MirrorInfo(frozenset(row.attributes), row.groups, row.users, row.rules)


def _rows(conn: Connection, table: Any, connector: str, batch: int,
          ) -> Iterator[tuple[str, Any]]:
    t = table.c
    # The driver's own rows: SQLite gives the JSON as text, PostgreSQL's driver decodes it.
    query = select(t.external_id, t.data).where(t.connector == connector).order_by(
        t.external_id)
    loads = json.loads
    rows = stream_tuples(conn, query, batch)
    while chunk := list(islice(rows, batch)):
        texts = [data for _, data in chunk]
        if all(isinstance(data, str) for data in texts):
            # one JSON array a batch: one decoder call instead of one a row
            yield from zip((eid for eid, _ in chunk), loads("[" + ",".join(texts) + "]"),
                           strict=True)
        else:
            for external_id, data in chunk:
                yield external_id, (loads(data) if isinstance(data, str) else data)


def iter_users(conn: Connection, connector: str) -> Iterator[SourceUser]:
    """The mirrored users of a connector."""
    for external_id, data in _rows(conn, MIRROR_USERS, connector, 5000):
        if type(data) is list:
            yield SourceUser(external_id, *data)
        else:
            yield SourceUser(external_id=external_id, **data)


def iter_groups(conn: Connection, connector: str) -> Iterator[SourceGroup]:
    """The mirrored groups of a connector (fewer a batch: their member lists are long)."""
    for external_id, data in _rows(conn, MIRROR_GROUPS, connector, 1000):
        yield SourceGroup(external_id=external_id, **data)


@dataclass
class Touched:
    """The entries a delta changed or removed: all a delta run needs to rewrite."""

    users: set[str]
    groups: set[str]
    removed_users: set[str]
    removed_groups: set[str]


def with_delta(conn: Connection, connector: str, delta: Delta,
               ) -> tuple[SourceIndex, Touched]:
    """The mirror with a delta laid over it: the current complete picture, as a source
    index, and which entries the delta touched.

    The mirror is read from its saved index where that is current, else row by row. The
    delta may still be finding its removals (``Delta.settle``): the mirror is read
    meanwhile, and the entries it removes are taken out before references are resolved.
    """
    changed_users = {u.external_id: u for u in delta.users}
    changed_groups = {g.external_id: g for g in delta.groups}
    try:
        index = saved_index(conn, connector)
        if index is not None:
            index.drop(set(changed_users), set(changed_groups))
        else:  # no saved index (a store from before, or another Python): read the rows
            index = SourceIndex()
            for u in iter_users(conn, connector):
                if u.external_id not in changed_users:
                    index.add_user(u)
            for g in iter_groups(conn, connector):
                if g.external_id not in changed_groups:
                    index.add_group(g)
        for u in changed_users.values():
            index.add_user(u)
        for g in changed_groups.values():
            index.add_group(g)
    except BaseException:
        with contextlib.suppress(Exception):  # the store's error is the one to report
            delta.settle()
        raise
    delta.settle()
    touched = Touched(set(changed_users), set(changed_groups), set(delta.removed_users),
                      set(delta.removed_groups))
    # a changed entry is kept even if the scan no longer saw it (it went meanwhile)
    index.drop(touched.removed_users - touched.users, touched.removed_groups - touched.groups)
    index.resolve()
    return index, touched


def _replace_rows(conn: Connection, table: Any, connector: str, ids: set[str],
                  entries: Iterator[tuple[str, Any]]) -> int:
    """Delete the rows of ``ids`` and insert ``entries`` (a delta's part of the mirror)."""
    t = table.c
    doomed = sorted(ids)
    for i in range(0, len(doomed), BATCH):
        conn.execute(delete(table).where(t.connector == connector,
                                         t.external_id.in_(doomed[i:i + BATCH])))
    rows = []
    for external_id, data in entries:
        digest, text = _encode(data)
        rows.append((connector, external_id, digest, text))
    for i in range(0, len(rows), BATCH):
        insert_rows(conn, table, ("connector", "external_id", "digest", "data"),
                    rows[i:i + BATCH])
    return len(doomed)


def _sync_table(conn: Connection, table: Any, connector: str,
                entries: Iterator[tuple[str, Any]]) -> int:
    """Bring one mirror table in line with ``entries``; return rows written or deleted."""
    t = table.c
    have: dict[str, str] = {row[0]: row[1] for row in conn.execute(
        select(t.external_id, t.digest).where(t.connector == connector))}
    inserts: list[tuple[str, str, str, str]] = []
    updates: list[dict[str, Any]] = []
    touched = 0

    def flush() -> None:
        nonlocal inserts, updates
        insert_rows(conn, table, ("connector", "external_id", "digest", "data"), inserts)
        if updates:
            p = plain(table).c
            conn.execute(update(plain(table)).where(p.connector == connector,
                                                    p.external_id == bindparam("eid"))
                         .values(digest=bindparam("d"), data=bindparam("j")), updates)
        inserts, updates = [], []

    for external_id, data in entries:
        digest, text = _encode(data)
        old = have.pop(external_id, None)
        if old == digest:
            continue
        touched += 1
        if old is None:
            inserts.append((connector, external_id, digest, text))
        else:
            updates.append({"eid": external_id, "d": digest, "j": text})
        if len(inserts) + len(updates) >= BATCH:
            flush()
    flush()
    gone = list(have)
    for i in range(0, len(gone), BATCH):
        conn.execute(delete(table).where(t.connector == connector,
                                         t.external_id.in_(gone[i:i + BATCH])))
    return touched + len(gone)


def store_snapshot(conn: Connection, connector: str, index: SourceIndex,
                   attributes: frozenset[str], only: Touched | None = None,
                   rules: str | None = None, *, save_index: bool = True) -> int:
    """Make the mirror equal the complete snapshot in ``index``, whose groups carry
    ``attributes``; with ``only`` (a delta run, whose index is the mirror with the delta
    laid over it) rewrite just the entries the delta touched. ``rules`` is the fingerprint
    of the rules the run applied; ``save_index`` also keeps the index in one value for the
    next delta run (worth its writing only for connectors that have deltas). Return rows
    touched."""
    seen: set[str] = set()
    user_ids = only.users if only else None
    group_ids = only.groups if only else None

    def users() -> Iterator[tuple[str, list[Any]]]:
        for u in index.users:
            if u.external_id not in seen and (user_ids is None or u.external_id in user_ids):
                seen.add(u.external_id)
                yield u.external_id, _user_data(u)

    def groups() -> Iterator[tuple[str, dict[str, Any]]]:
        done: set[str] = set()
        for pos, g in enumerate(index.groups):
            if g.external_id not in done and (group_ids is None
                                              or g.external_id in group_ids):
                done.add(g.external_id)
                yield g.external_id, _group_data(index, pos)

    if only is None:
        touched = _sync_table(conn, MIRROR_USERS, connector, users()) + _sync_table(
            conn, MIRROR_GROUPS, connector, groups())
    else:
        touched = _replace_rows(conn, MIRROR_USERS, connector,
                                only.users | only.removed_users, users())
        touched += _replace_rows(conn, MIRROR_GROUPS, connector,
                                 only.groups | only.removed_groups, groups())
    stamp = utcnow()
    state = {"attributes": sorted(attributes), "groups": len(index.groups),
             "users": len(index.users), "rules": rules, "updated_at": stamp}
    t = MIRROR_STATE.c
    if not conn.execute(update(MIRROR_STATE).where(t.connector == connector)
                        .values(state)).rowcount:
        conn.execute(insert(MIRROR_STATE).values(connector=connector, **state))
    # the same picture in one value, for the next delta run; it holds while the state's
    # updated_at is this one
    conn.execute(delete(MIRROR_INDEX).where(MIRROR_INDEX.c.connector == connector))
    if save_index:
        conn.execute(insert(MIRROR_INDEX).values(connector=connector, updated_at=stamp,
                                                 data=index.saved()))
    return touched


def saved_index(conn: Connection, connector: str) -> SourceIndex | None:
    """The mirror as its last sync saved it in one value, not yet resolved; None when
    there is none, or it is not the mirror's current state, or it cannot be read here."""
    s, i = MIRROR_STATE.c, MIRROR_INDEX.c
    row = conn.execute(select(i.data).select_from(MIRROR_INDEX.join(
        MIRROR_STATE, s.connector == i.connector)).where(
        i.connector == connector, i.updated_at == s.updated_at)).first()
    return SourceIndex.from_saved(bytes(row[0])) if row is not None else None


def load_index(conn: Connection, connector: str, needed: frozenset[str]) -> SourceIndex:
    """The connector's mirror as a source index; UsageError when there is none or when it
    lacks group attributes the rules read (it holds only what earlier rules read)."""
    mirrored = info(conn, connector)
    if mirrored is None:
        raise UsageError(f"connector {connector!r} has no mirror yet: run a sync first")
    missing = mirrored.missing(needed)
    if missing:
        raise UsageError(
            f"the mirror of {connector!r} lacks the group attribute(s) "
            f"{', '.join(sorted(missing))} that these rules read (the last sync's rules did "
            "not): preview with a live `sync --dry-run` instead")
    index = saved_index(conn, connector)
    if index is None:
        return SourceIndex.build(iter_users(conn, connector), iter_groups(conn, connector))
    index.resolve()
    return index
