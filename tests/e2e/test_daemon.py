"""The daemon (`syncd run`) as systemd runs it, the lease table, and the service unit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import in_ci, run_syncd_command, syncd_command
from sqlalchemy import Engine

from syncd import lease

REPO = Path(__file__).resolve().parents[2]
DEMO_LDIF = REPO / "config" / "demo" / "directory.ldif"


def _config(tmp_path: Path, delta: str = "1s", full: str | None = None) -> Path:
    schedule = f"{{delta: {delta}" + (f', full: "{full}"' if full else "") + "}"
    path = tmp_path / "syncd.yaml"
    path.write_text(f"""\
version: 1
store: {{url: "sqlite:///state/syncd.db"}}
connectors:
  - name: demo
    type: ldif
    path: {DEMO_LDIF}
    schedule: {schedule}
rules:
  - name: all
    when: {{attribute: {{name: businessCategory, equals: sync}}}}
""", encoding="utf-8")
    path.chmod(0o600)
    return path


def _status(config: Path) -> dict[str, object]:
    result = run_syncd_command("status", "--format", "json", config=config)
    assert result.code == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)["connectors"][0]
    return data


def test_daemon_notifies_systemd_runs_on_schedule_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = _config(tmp_path)
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(30)
    env = {k: v for k, v in os.environ.items() if k != "SYNCD_CONFIG"}
    env["NOTIFY_SOCKET"] = str(notify)
    proc = subprocess.Popen([*syncd_command(), "-c", str(config), "--log-format", "json",
                             "run"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = sock.recv(4096).decode()
        assert "READY=1" in ready
        # The start-up run applies the demo; a later run from the 1s interval finds
        # nothing to do.
        deadline = time.monotonic() + 30
        status = _status(config)
        while time.monotonic() < deadline and (
                not status["last_run"] or status["last_run"]["status"] != "no_changes"):  # type: ignore[index]
            time.sleep(0.5)
            status = _status(config)
        assert status["last_run"]["status"] == "no_changes"  # type: ignore[index]
        assert status["last_success"] is not None
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    assert proc.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert events.count("sync.run") >= 2
    assert "daemon.stopping" in events
    assert events[-1] == "daemon.stopped"
    groups = json.loads(run_syncd_command("groups", "list", "--format", "json",
                                          config=config).stdout)
    assert {g["name"] for g in groups} >= {"platform", "sales"}


def test_daemon_refuses_a_broken_config_with_exit_2(tmp_path: Path) -> None:
    config = _config(tmp_path, delta="5 minutes")
    result = run_syncd_command("run", config=config)
    assert result.code == 2
    assert "schedule.delta" in result.stderr


def test_lease_is_exclusive_until_released_or_expired(store_engine: Engine) -> None:
    hour = timedelta(hours=1)
    assert lease.acquire(store_engine, "connector:corp", "a:1", hour)
    assert lease.acquire(store_engine, "connector:corp", "a:1", hour)  # renewal
    assert not lease.acquire(store_engine, "connector:corp", "b:2", hour)
    assert lease.acquire(store_engine, "connector:other", "b:2", hour)
    lease.release(store_engine, "connector:corp", "a:1")
    assert lease.acquire(store_engine, "connector:corp", "b:2", hour)
    # An expired lease passes to whoever asks.
    assert lease.acquire(store_engine, "connector:x", "a:1", timedelta(seconds=-1))
    assert lease.acquire(store_engine, "connector:x", "b:2", hour)
    assert not lease.acquire(store_engine, "connector:x", "a:1", hour)


def test_service_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if in_ci():
            pytest.fail("systemd-analyze is missing (Debian package systemd)")
        pytest.skip("systemd-analyze is not installed")
    unit = (REPO / "systemd" / "syncd.service").read_text(encoding="utf-8")
    unit = unit.replace("/usr/local/bin/syncd", syncd_command()[0])
    path = tmp_path / "syncd.service"
    path.write_text(unit, encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "Type=notify" in unit and "ExecStart=" in unit
