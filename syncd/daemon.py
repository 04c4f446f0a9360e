"""``syncd run``: the daemon. Schedules every connector and runs until SIGTERM.

Each connector runs once at start-up, then every ``schedule.delta`` (incremental where the
connector has deltas) and at each ``schedule.full`` cron time (a complete reconciliation).
Runs happen one at a time: a single worker thread, so SQLite never sees two writers and a
slow run delays the next instead of overlapping it. Several instances may share a
PostgreSQL store: a lease per connector lets only one of them run it.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from syncd import lease
from syncd.audit import AuditWriter
from syncd.config.model import Config
from syncd.durations import cron_trigger, parse_duration
from syncd.engine import RunOptions, SyncEngine
from syncd.errors import SyncdError

log = structlog.get_logger("syncd.daemon")

DEFAULT_INTERVAL = "1h"  # a connector with no schedule still reconciles now and then


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state, when it is listening."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("daemon.notify_failed", error=str(exc))


class Daemon:
    """The scheduler around the sync engine."""

    def __init__(self, config: Config, engine: Any, audit: AuditWriter) -> None:
        self.config = config
        self.sync = SyncEngine(config, engine, audit)
        self.engine = engine
        self.holder = lease.holder_name()
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )

    def run_connector(self, name: str, full: bool) -> None:
        """One scheduled run; never raises (the scheduler would only log it worse)."""
        if self.stopping.is_set():
            return
        lease_name = lease.connector_lease(name)
        try:
            if not lease.acquire(self.engine, lease_name, self.holder, lease.RUN_TTL):
                log.info("daemon.lease_held_elsewhere", connector=name)
                return
            try:
                result = self.sync.run([name], RunOptions(full=full))
            finally:
                lease.release(self.engine, lease_name, self.holder)
            log.info("daemon.run_finished", connector=name, full=full, status=result.status)
        except SyncdError as exc:
            log.error("daemon.run_error", connector=name, error=str(exc))
        except Exception:
            log.exception("daemon.run_crashed", connector=name)

    def schedule(self) -> None:
        """One start-up run per connector, then its delta interval and full cron jobs."""
        for c in self.config.connectors:
            self.scheduler.add_job(self.run_connector, args=[c.name, False],
                                   id=f"{c.name}:startup", name=f"{c.name} start-up run")
            every = parse_duration(c.schedule.delta or DEFAULT_INTERVAL)
            self.scheduler.add_job(
                self.run_connector, IntervalTrigger(seconds=every.total_seconds()),
                args=[c.name, False], id=f"{c.name}:delta", name=f"{c.name} delta")
            if c.schedule.full:
                self.scheduler.add_job(self.run_connector, cron_trigger(c.schedule.full),
                                       args=[c.name, True], id=f"{c.name}:full",
                                       name=f"{c.name} full")

    def next_runs(self) -> dict[str, str]:
        """Next fire time of every job, for the log."""
        return {job.id: job.next_run_time.isoformat() for job in self.scheduler.get_jobs()
                if job.next_run_time is not None}

    def serve(self) -> None:
        """Run until SIGTERM or SIGINT; the run in progress finishes first."""
        def stop(signum: int, _frame: Any) -> None:
            log.info("daemon.stopping", signal=signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:  # records a process killed after its commit left out (syncd.auditfile)
            self.sync.audit.catch_up(self.engine)
        except SyncdError as exc:  # every run tries again before it applies anything
            log.error("daemon.audit_file_behind", error=str(exc))
        self.schedule()
        self.scheduler.start()
        log.info("daemon.started", connectors=[c.name for c in self.config.connectors],
                 next_runs=self.next_runs())
        sd_notify("READY=1\nSTATUS=scheduling " + ", ".join(
            c.name for c in self.config.connectors))
        self.stopping.wait()
        sd_notify("STOPPING=1")
        self.scheduler.shutdown(wait=True)
        log.info("daemon.stopped")
