"""Connector leases on SQLite and PostgreSQL: one holder at a time, and a lease left by a
process of this host that is gone is taken over instead of blocking runs for hours."""

from __future__ import annotations

import socket
import subprocess
import sys

from sqlalchemy import Engine

from syncd import lease

NAME = lease.connector_lease("corp")


def exited_pid() -> int:
    """The id of a process of this host that has ended."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_one_holder_at_a_time(store_engine: Engine) -> None:
    assert lease.acquire(store_engine, NAME, "a:1", lease.RUN_TTL)
    assert lease.acquire(store_engine, NAME, "a:1", lease.RUN_TTL)  # renewed by its holder
    assert not lease.acquire(store_engine, NAME, "b:2", lease.RUN_TTL)
    held = lease.current(store_engine, NAME)
    assert held is not None
    assert held.holder == "a:1"
    lease.release(store_engine, NAME, "b:2")  # not b's to give up
    assert not lease.acquire(store_engine, NAME, "b:2", lease.RUN_TTL)
    lease.release(store_engine, NAME, "a:1")
    assert lease.current(store_engine, NAME) is None
    assert lease.acquire(store_engine, NAME, "b:2", lease.RUN_TTL)


def test_a_lease_of_a_process_gone_from_this_host_is_taken_over(store_engine: Engine) -> None:
    here = socket.gethostname()
    gone = f"{here}:{exited_pid()}"
    assert lease.acquire(store_engine, NAME, gone, lease.RUN_TTL)
    assert lease.acquire(store_engine, NAME, f"{here}:1", lease.RUN_TTL)
    held = lease.current(store_engine, NAME)
    assert held is not None
    assert held.holder == f"{here}:1"


def test_a_lease_of_a_live_process_or_another_host_holds(store_engine: Engine) -> None:
    here = socket.gethostname()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as live:
        try:
            assert lease.acquire(store_engine, NAME, f"{here}:{live.pid}", lease.RUN_TTL)
            assert not lease.acquire(store_engine, NAME, f"{here}:1", lease.RUN_TTL)
        finally:
            live.kill()
    lease.release(store_engine, NAME, f"{here}:{live.pid}")
    # another host's process cannot be asked: its lease holds until it expires
    assert lease.acquire(store_engine, NAME, f"elsewhere.{here}:{exited_pid()}", lease.RUN_TTL)
    assert not lease.acquire(store_engine, NAME, f"{here}:1", lease.RUN_TTL)
