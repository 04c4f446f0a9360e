"""Leases: only one of several syncd instances on one store runs a connector at a time."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy import Engine, insert, update
from sqlalchemy.exc import IntegrityError

from syncd.store.schema import tables, utcnow

LEASES = tables["leases"]


def holder_name() -> str:
    """This instance's name in the lease table: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire(engine: Engine, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease ``name`` for ``ttl``; False when another holder has it.

    One conditional UPDATE (free, expired, or already ours) or one INSERT: both are atomic
    on SQLite and PostgreSQL, so two instances never both succeed.
    """
    now = utcnow()
    with engine.begin() as conn:
        t = LEASES.c
        taken = conn.execute(
            update(LEASES).where(t.name == name, (t.expires_at < now) | (t.holder == holder))
            .values(holder=holder, expires_at=now + ttl)).rowcount
        if taken:
            return True
    try:
        with engine.begin() as conn:
            conn.execute(insert(LEASES).values(name=name, holder=holder, expires_at=now + ttl))
        return True
    except IntegrityError:
        return False


def release(engine: Engine, name: str, holder: str) -> None:
    """Give the lease up (only if still ours)."""
    with engine.begin() as conn:
        t = LEASES.c
        conn.execute(update(LEASES).where(t.name == name, t.holder == holder)
                     .values(expires_at=utcnow()))
