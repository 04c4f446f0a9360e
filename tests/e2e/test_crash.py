"""A sync killed at any moment leaves the store as it was before the run or fully applied."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_syncd_command, syncd_command
from sqlalchemy import inspect

from syncd.store.db import open_engine
from syncd.store.schema import tables

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic directory large enough that an apply takes a noticeable while."""
    out = tmp_path_factory.mktemp("crash") / "directory.ldif"
    subprocess.run([sys.executable, str(REPO / "bench" / "generate.py"), "--size", "custom",
                    "--groups", "2000", "--users", "8000", "--memberships", "60000",
                    "--out", str(out)], check=True, capture_output=True)
    return out


def _config(tmp_path: Path, ldif: Path) -> Path:
    path = tmp_path / "syncd.yaml"
    path.write_text(f"""\
version: 1
store: {{url: "sqlite:///state/syncd.db"}}
connectors:
  - name: big
    type: ldif
    path: {ldif}
rules:
  - name: all
    roles: {{owner: {{attribute: owner}}}}
""", encoding="utf-8")
    path.chmod(0o600)
    return path


def _counts(config: Path) -> tuple[int, int]:
    groups = json.loads(run_syncd_command("groups", "list", "--format", "json",
                                          config=config).stdout)
    audit = run_syncd_command("audit", "--format", "json", config=config).stdout
    return len(groups), len(audit.splitlines())


def _wait_for_wal(wal: Path, size: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the apply has written ``size`` bytes to the store's write-ahead log."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if wal.exists() and wal.stat().st_size >= size:
            return
        time.sleep(0.005)
    pytest.fail(f"the sync ended or stalled before writing {size} bytes to {wal.name}")


# Killed after a time (anywhere: reading, planning, applying, committing), or once the
# apply has written so much, which is always inside its transaction.
@pytest.mark.parametrize("when", ["0.8s", "1.6s", "2.4s", "1MB", "6MB"])
def test_a_sync_killed_mid_run_leaves_nothing_half_done(tmp_path: Path, directory: Path,
                                                        when: str) -> None:
    config = _config(tmp_path, directory)
    plan = run_syncd_command("sync", "--dry-run", "--format", "json", config=config)
    assert plan.code == 0, plan.stderr
    planned = json.loads(plan.stdout)
    total_groups = planned["summary"]["create_group"]
    total_changes = len(planned["changes"])
    assert total_groups > 1000

    env = {k: v for k, v in os.environ.items() if k != "SYNCD_CONFIG"}
    proc = subprocess.Popen([*syncd_command(), "-q", "-c", str(config), "sync"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if when.endswith("MB"):
        _wait_for_wal(tmp_path / "state" / "syncd.db-wal", int(when[:-2]) * 2**20, proc)
    else:
        time.sleep(float(when[:-1]))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    groups, records = _counts(config)
    # Either nothing of the run is there, or all of it: never a part.
    assert (groups, records) in ((0, 0), (total_groups, total_changes))
    # The apply builds these tables' indexes afresh (a load that doubles them): whatever
    # the moment of the kill, they are all there.
    engine = open_engine(f"sqlite:///{tmp_path / 'state' / 'syncd.db'}")
    try:
        present = inspect(engine)
        for table in ("memberships", "audit"):
            assert {i["name"] for i in present.get_indexes(table)} == {
                i.name for i in tables[table].indexes}
    finally:
        engine.dispose()
    # The next run finishes the job, and the one after has nothing to do.
    again = run_syncd_command("sync", "--format", "json", config=config)
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["status"] in ("applied", "no_changes")
    assert _counts(config)[0] == total_groups
    check = run_syncd_command("sync", "--check", config=config)
    assert check.code == 0, check.stdout
