"""Benchmark of the sync engine on synthetic LDIF directories: plan, apply, re-plan, memory.

    python bench/engine.py --size medium            # or small, large
    python bench/engine.py --size large --store postgresql+psycopg://postgres@127.0.0.1/test
    python bench/engine.py --size large --repeat 3     # the best of three runs a scenario

Each scenario runs in a fresh process so that its peak memory is its own. Phases are timed
through the engine's progress hook: reading the source (LDIF parse and index), planning
(store read, rules and diff, safety) and applying (one transaction, audit and mirror).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import machine  # bench/machine.py, beside this script

HERE = Path(__file__).resolve().parent
TARGETS = {  # issue targets on the large set (2M memberships)
    "plan": ("rules and diff", 5.0),
    "first_apply": ("first apply into an empty SQLite store", 30.0),
    "replan": ("no-change re-plan (rules and diff)", 5.0),
}

CONFIG = """\
version: 1
store: {{url: "{store}"}}
connectors:
  - name: bench
    type: ldif
    path: {ldif}
    attributes:
      user_disabled: {{name: nsAccountLock, equals: "TRUE"}}
rules:
  - name: skip-builtin
    when: {{dn: {{under: "ou=builtin,ou=groups,dc=example,dc=org"}}}}
    action: skip
  - name: all
    roles: {{owner: {{attribute: owner}}}}
"""


def scenario(config: Path, dry_run: bool) -> dict[str, Any]:
    """Run one sync in this process and report phase times and peak memory."""
    from syncd.audit import AuditWriter
    from syncd.config.loader import load_config
    from syncd.engine import RunOptions, SyncEngine, peak_memory_mib
    from syncd.store.db import ensure_schema, open_engine, resolve_url

    cfg = load_config(config)
    engine = open_engine(resolve_url(cfg.store.url, cfg.base_dir))
    ensure_schema(engine)
    marks: list[tuple[str, float, float]] = []

    def hook(_connector: str, phase: str, _done: int, _total: int | None) -> None:
        if not marks or marks[-1][0] != phase:
            marks.append((phase, time.perf_counter(), time.process_time()))

    result = SyncEngine(cfg, engine, AuditWriter(None)).run(
        [], RunOptions(dry_run=dry_run, full=True, force=True, progress=hook))
    wall = {a: round(tb - ta, 2) for (a, ta, _), (_, tb, _) in pairwise(marks)}
    cpu = {a: round(cb - ca, 2) for (a, _, ca), (_, _, cb) in pairwise(marks)}
    engine.dispose()
    return {"status": result.status, "changes": len(result.plan.changes),
            "read_s": wall.get("reading source", 0.0), "plan_s": wall.get("planning", 0.0),
            "apply_s": wall.get("applying", 0.0), "plan_cpu": cpu.get("planning", 0.0),
            "apply_cpu": cpu.get("applying", 0.0), "peak_mib": round(peak_memory_mib())}


def run_child(config: Path, dry_run: bool) -> dict[str, Any]:
    """One scenario in a fresh interpreter."""
    cmd = [sys.executable, str(Path(__file__)), "--child", str(config)]
    if dry_run:
        cmd.append("--dry-run")
    # the checkout's syncd, installed or not (the child's path starts at bench/)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p)}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def ensure_data(size: str, data: Path) -> tuple[Path, Path]:
    """The base LDIF and a copy with 100 groups changed, generated once."""
    data.mkdir(parents=True, exist_ok=True)
    base, changed = data / f"{size}.ldif", data / f"{size}-changed.ldif"
    if not base.exists() or not changed.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), "--size", size, "--out",
                        str(base), "--changes", "100", "--out-changed", str(changed)],
                       check=True)
    return base, changed


def reset_store(store: str, data: Path, size: str) -> str:
    """A fresh, empty store for the run."""
    if store == "sqlite":
        db = data / f"{size}.db"
        for suffix in SUFFIXES:
            Path(str(db) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{db}"
    from sqlalchemy import create_engine, text

    engine = create_engine(store)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS syncd_bench CASCADE"))
        conn.execute(text("CREATE SCHEMA syncd_bench"))
    engine.dispose()
    sep = "&" if "?" in store else "?"
    return f"{store}{sep}options=-csearch_path%3Dsyncd_bench"


SUFFIXES = ("", "-wal", "-shm")


@contextmanager
def store_kept(db: Path, keep: bool) -> Iterator[None]:
    """With ``keep``: copy the SQLite store aside first, so that ``restore`` can put it
    back before each repeat of a scenario that writes; the last run's store stays."""
    if not keep:
        yield
        return
    for suffix in SUFFIXES:
        src = Path(str(db) + suffix)
        if src.exists():
            shutil.copyfile(src, str(db) + suffix + ".kept")
    try:
        yield
    finally:
        for suffix in SUFFIXES:
            Path(str(db) + suffix + ".kept").unlink(missing_ok=True)


def restore(db: Path) -> None:
    """The store as ``store_kept`` found it."""
    for suffix in SUFFIXES:
        kept, path = Path(str(db) + suffix + ".kept"), Path(str(db) + suffix)
        if kept.exists():
            shutil.copyfile(kept, path)
        else:
            path.unlink(missing_ok=True)


def main() -> None:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    parser.add_argument("--store", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run each scenario N times and show the best (SQLite only)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dry-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(scenario(args.child, args.dry_run)))
        return

    base, changed = ensure_data(args.size, args.data_dir)
    url = reset_store(args.store, args.data_dir, args.size)
    if args.repeat > 1 and args.store != "sqlite":
        parser.error("--repeat needs the SQLite store (it restores the file between runs)")
    config = args.data_dir / f"{args.size}.yaml"
    db = args.data_dir / f"{args.size}.db"
    steps = [
        ("plan", "plan, empty store (dry run)", base, True),
        ("first_apply", "first sync into the empty store", base, False),
        ("replan", "no-change re-plan (dry run)", base, True),
        ("resync", "no-change sync", base, False),
        ("changed_plan", "100 groups changed: plan (dry run)", changed, True),
        ("changed_apply", "100 groups changed: sync", changed, False),
    ]
    rows = []
    for key, label, ldif, dry in steps:
        config.write_text(CONFIG.format(store=url, ldif=ldif), encoding="utf-8")
        runs = []
        with store_kept(db, args.repeat > 1 and not dry):
            for i in range(args.repeat):
                if i and not dry:
                    restore(db)
                runs.append(run_child(config, dry))
        # the best of the runs: the phase the scenario is about, least time
        phase = "plan_s" if dry else "apply_s"
        r = min(runs, key=lambda run: run[phase])
        r["runs"] = [run[phase] for run in runs]
        if len({run["changes"] for run in runs}) > 1:  # a restore that did not hold
            sys.exit(f"{label}: the runs planned different numbers of changes: "
                     f"{[run['changes'] for run in runs]}")
        rows.append((key, label, r))
    print(f"\nsyncd engine benchmark: {args.size} set ({base.name}), store {args.store}"
          + (f", best of {args.repeat} runs a scenario" if args.repeat > 1 else ""))
    print(machine.describe() + "\n")
    head = (f"{'scenario':<40} {'changes':>9} {'read':>7} {'plan':>7} {'(cpu)':>7} "
            f"{'apply':>7} {'(cpu)':>7} {'peak':>8}")
    print(head)
    print("-" * len(head))
    for _key, label, r in rows:
        print(f"{label:<40} {r['changes']:>9} {r['read_s']:>6.2f}s {r['plan_s']:>6.2f}s "
              f"{r['plan_cpu']:>6.2f}s {r['apply_s']:>6.2f}s {r['apply_cpu']:>6.2f}s "
              f"{r['peak_mib']:>5} MiB")
    print("\nread = LDIF parse and source index; plan = store read, rules, diff, safety;"
          " apply = one transaction with audit rows and mirror;\n(cpu) = CPU seconds of the"
          " phase (wall time includes waiting for the disk and for other processes)")
    by_key = {k: r for k, _, r in rows}
    if args.repeat > 1:
        print("\nevery run (the phase in the table: plan for dry runs, apply for syncs):")
        for _key, label, r in rows:
            print(f"  {label:<40} " + "  ".join(f"{t:6.2f}s" for t in r["runs"]))
    print(f"\ntargets (issue figures, set for the large set; this run: {args.size}):")
    for key, (what, limit) in TARGETS.items():
        r = by_key[key]
        took = r["apply_s"] if key == "first_apply" else r["plan_s"]
        print(f"  {what}: {took:.2f}s (target < {limit:.0f}s) "
              f"{'ok' if took < limit else 'OVER'}")
    peak = max(r["peak_mib"] for r in by_key.values())
    print(f"  peak memory: {peak} MiB (target < 1024 MiB) {'ok' if peak < 1024 else 'OVER'}")


if __name__ == "__main__":
    main()
