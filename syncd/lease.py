"""Leases: only one of several syncd instances on one store runs a connector at a time."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from syncd.store.schema import tables, utcnow

LEASES = tables["leases"]
# How long a lease taken for one run lasts: longer than any run (it is not renewed yet).
RUN_TTL = timedelta(hours=2)


class Held(NamedTuple):
    """Who holds a lease, and until when."""

    holder: str
    expires_at: datetime


def connector_lease(connector: str) -> str:
    """The name of the lease a run of ``connector`` holds (sync, apply and the daemon)."""
    return f"connector:{connector}"


def holder_name() -> str:
    """This instance's name in the lease table: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire(engine: Engine, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease ``name`` for ``ttl``; False when another holder has it.

    One conditional UPDATE (free, expired, already ours, or held by a process of this host
    that is gone) or one INSERT: both are atomic on SQLite and PostgreSQL, so two instances
    never both succeed.
    """
    now = utcnow()
    t = LEASES.c
    free = (t.expires_at < now) | (t.holder == holder)
    held = current(engine, name)
    if held is not None and _dead_here(held.holder):
        free = free | (t.holder == held.holder)  # still that holder's when we take it
    with engine.begin() as conn:
        taken = conn.execute(
            update(LEASES).where(t.name == name, free)
            .values(holder=holder, expires_at=now + ttl)).rowcount
        if taken:
            return True
    try:
        with engine.begin() as conn:
            conn.execute(insert(LEASES).values(name=name, holder=holder, expires_at=now + ttl))
        return True
    except IntegrityError:
        return False


def current(engine: Engine, name: str) -> Held | None:
    """Who holds the lease ``name`` now (None when nobody does)."""
    t = LEASES.c
    with engine.connect() as conn:
        row = conn.execute(select(t.holder, t.expires_at).where(
            t.name == name, t.expires_at >= utcnow())).first()
    return Held(row.holder, row.expires_at) if row else None


def _dead_here(holder: str) -> bool:
    """Whether ``holder`` is a process of this host that no longer runs (killed before it
    could give its lease up)."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it runs, as another user
    return False


def release(engine: Engine, name: str, holder: str) -> None:
    """Give the lease up (only if still ours)."""
    with engine.begin() as conn:
        t = LEASES.c
        conn.execute(update(LEASES).where(t.name == name, t.holder == holder)
                     .values(expires_at=utcnow()))
