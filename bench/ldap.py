"""Benchmark of the ldap connector against a real slapd loaded with the generator's sets.

    python bench/ldap.py --size medium            # or small, large

Loads the set into a fresh slapd (slapadd, mdb), then in the same run: a raw ``ldapsearch``
pull of the same entries and attributes (paged, written to /dev/null), a full sync into an
empty SQLite store, a no-change full sync, and a default (delta) sync after 100 groups were
changed over LDAP (the ``--changes 100`` copy: modify, modrdn, delete), three times from
copies of one store, the median shown. Each sync runs in a fresh interpreter so its peak
memory is its own.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import machine  # bench/machine.py, beside this script

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

SUFFIX = "dc=example,dc=org"
GROUPS = f"ou=groups,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
GROUP_ATTRS = ["cn", "description", "entryUUID", "member", "uniqueMember", "owner"]
USER_ATTRS = ["uid", "mail", "cn", "entryUUID", "nsAccountLock"]
TARGETS = {"full": 20.0, "nochange": 15.0}
DELTA_RUNS = 3

CONFIG = """\
version: 1
store: {{url: "sqlite:///{store}"}}
connectors:
  - name: bench
    type: ldap
    url: {url}
    bind_dn: "{bind_dn}"
    password: "{password}"
    page_size: 1000
    delta_overlap: 1s
    timeouts: {{operation: 10m}}
    groups: {{base: "{groups}"}}
    users: {{base: "{people}"}}
    attributes:
      user_disabled: {{name: nsAccountLock, equals: "TRUE"}}
rules:
  - name: skip-builtin
    when: {{dn: {{under: "ou=builtin,ou=groups,dc=example,dc=org"}}}}
    action: skip
  - name: all
    roles: {{owner: {{attribute: owner}}}}
"""


def scenario(config: Path, full: bool) -> dict[str, Any]:
    """One sync in this process: phase times, mode, changes, peak memory."""
    from syncd.audit import AuditWriter
    from syncd.config.loader import load_config
    from syncd.engine import RunOptions, SyncEngine, peak_memory_mib
    from syncd.store.db import ensure_schema, open_engine, resolve_url

    cfg = load_config(config)
    engine = open_engine(resolve_url(cfg.store.url, cfg.base_dir))
    ensure_schema(engine)
    marks: list[tuple[str, float]] = []

    def hook(_connector: str, phase: str, _done: int, _total: int | None) -> None:
        if not marks or marks[-1][0] != phase:
            marks.append((phase, time.perf_counter()))

    started = time.perf_counter()
    result = SyncEngine(cfg, engine, AuditWriter(None)).run(
        [], RunOptions(full=full, force=True, progress=hook))
    total = time.perf_counter() - started
    times = {a: round(tb - ta, 2) for (a, ta), (_, tb) in itertools.pairwise(marks)}
    engine.dispose()
    cp = result.plan.connectors["bench"]
    return {"status": result.status, "mode": cp.mode, "error": cp.error,
            "changes": len(result.plan.changes), "groups": cp.groups_seen,
            "users": cp.users_seen, "read_s": times.get("reading source", 0.0),
            "total_s": round(total, 2), "peak_mib": round(peak_memory_mib())}


def connector_only(config: Path) -> dict[str, Any]:
    """The connector alone, no engine: a full pull, then a delta from its cursor."""
    from syncd.config.loader import load_config
    from syncd.connector import available
    from syncd.engine import peak_memory_mib
    from syncd.rules import needed_attributes, rules_for

    cfg = load_config(config)
    settings = cfg.connector("bench")
    conn = available()[settings.type](settings, base_dir=cfg.base_dir, needed_attributes=(
        needed_attributes(rules_for(cfg.rules, "bench"))))
    started = time.perf_counter()
    snap = conn.snapshot()
    groups, users = sum(1 for _ in snap.groups), sum(1 for _ in snap.users)
    full_s = time.perf_counter() - started
    assert snap.cursor is not None
    time.sleep(1.1)
    started = time.perf_counter()
    delta = conn.delta(snap.cursor)  # settled: the scans for removals are timed too
    delta_s = time.perf_counter() - started
    assert delta is not None
    return {"snapshot_s": round(full_s, 2), "delta_s": round(delta_s, 2), "groups": groups,
            "users": users, "peak_mib": round(peak_memory_mib())}


def run_child(config: Path, full: bool, *, only: bool = False) -> dict[str, Any]:
    """One scenario in a fresh interpreter."""
    cmd = [sys.executable, str(Path(__file__)), "--child", str(config)]
    if full:
        cmd.append("--full")
    if only:
        cmd.append("--connector-only")
    out = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"sync child failed: {out.stderr.strip()[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result.get("status") == "failed":
        raise SystemExit(f"sync failed: {result['error']}")
    return result


def ldapsearch_pull(url: str, bind_dn: str, password: str) -> float:
    """Seconds for ldapsearch to page through the same groups and users to /dev/null."""
    started = time.perf_counter()
    for base, filt, attrs in ((GROUPS, "(|(objectClass=groupOfNames)"
                               "(objectClass=groupOfUniqueNames))", GROUP_ATTRS),
                              (PEOPLE, "(objectClass=inetOrgPerson)", USER_ATTRS)):
        subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url, "-D",
                        bind_dn, "-w", password, "-b", base, "-E", "pr=1000/noprompt", filt,
                        *attrs], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def ensure_data(size: str, data: Path) -> tuple[Path, Path]:
    """The base LDIF and a copy with 100 groups changed, generated once."""
    data.mkdir(parents=True, exist_ok=True)
    base, changed = data / f"{size}.ldif", data / f"{size}-changed.ldif"
    if not base.exists() or not changed.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), "--size", size, "--out",
                        str(base), "--changes", "100", "--out-changed", str(changed)],
                       check=True)
    return base, changed


def _groups_by_uuid(path: Path) -> dict[str, tuple[str, dict[str, list[bytes]]]]:
    from connectors.ldifparse import read_ldif

    keep = {"entryuuid", "objectclass", "cn", "description", "member", "owner",
            "businesscategory"}
    out = {}
    for record in read_ldif(path, keep=keep):
        if b"groupOfNames" in record.attrs.get("objectclass", []):
            out[record.attrs["entryuuid"][0].decode()] = (record.dn, record.attrs)
    return out


def apply_changes(server: Any, base: Path, changed: Path) -> dict[str, int]:
    """Turn the difference between the two LDIF files into LDAP operations on the server."""
    from ldap3 import MODIFY_REPLACE

    before, after = _groups_by_uuid(base), _groups_by_uuid(changed)
    conn = server.connection()
    counts = {"modified": 0, "renamed": 0, "deleted": 0}
    for key, (old_dn, attrs) in before.items():
        if key not in after:
            conn.delete(old_dn)
            counts["deleted"] += 1
            continue
        dn, new_attrs = after[key]
        if dn != old_dn:
            rdn, _, parent = dn.partition(",")
            old_parent = old_dn.partition(",")[2]
            conn.modify_dn(old_dn, rdn, new_superior=parent if parent != old_parent else None)
            counts["renamed"] += 1
        changes = {}
        for name in ("description", "member", "owner", "businesscategory"):
            if attrs.get(name, []) != new_attrs.get(name, []):
                changes[name] = [(MODIFY_REPLACE, new_attrs.get(name, []))]
        if changes:
            conn.modify(dn, changes)
            counts["modified"] += 1
    conn.unbind()
    return counts


def main() -> None:
    """Load the set, run every scenario, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--connector-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(connector_only(args.child) if args.connector_only
                         else scenario(args.child, args.full)))
        return

    from slapd import ROOT_DN, ROOT_PW, Slapd

    base, changed = ensure_data(args.size, args.data_dir)
    work = args.data_dir / f"ldap-{args.size}"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    server = Slapd(work / "slapd", max_size=8 << 30)
    started = time.perf_counter()
    server.setup(base)
    load_s = time.perf_counter() - started
    server.start()
    try:
        time.sleep(2.1)  # entries older than the 1 s delta overlap
        config = work / "bench.yaml"
        config.write_text(CONFIG.format(store=work / "store.db", url=server.url,
                                        bind_dn=ROOT_DN, password=ROOT_PW, groups=GROUPS,
                                        people=PEOPLE), encoding="utf-8")
        pulls = [ldapsearch_pull(server.url, ROOT_DN, ROOT_PW) for _ in range(2)]
        pull = min(pulls)
        full = run_child(config, True)
        nochange = run_child(config, True)
        alone = run_child(config, False, only=True)
        time.sleep(1.1)
        counts = apply_changes(server, base, changed)
        time.sleep(2.1)
        # The same delta run DELTA_RUNS times, each from a copy of the store as the
        # no-change sync left it (the directory does not change between them): one run
        # moves too much with the machine to judge the target by.
        store = work / "store.db"
        kept = [(Path(f"{store}{suffix}"), work / f"kept{suffix}")
                for suffix in ("", "-wal", "-shm")]
        for live, copy in kept:
            if live.exists():
                shutil.copyfile(live, copy)
        deltas = []
        for _ in range(DELTA_RUNS):
            for live, copy in kept:
                live.unlink(missing_ok=True)
                if copy.exists():
                    shutil.copyfile(copy, live)
            # Write the copy out now: else the run's first fsync (SQLite's new WAL) waits
            # for the file system to write hundreds of megabytes of this copy.
            os.sync()
            deltas.append(run_child(config, False))
        deltas.sort(key=lambda r: r["total_s"])
        delta = deltas[len(deltas) // 2]  # the median run
    finally:
        server.stop()

    print(f"\nldap connector benchmark: {args.size} set ({base.name}), slapd mdb, SQLite store")
    print(machine.describe())
    print(f"slapadd load: {load_s:.1f} s; changes applied over LDAP: {counts}\n")
    head = (f"{'run':<34} {'mode':>6} {'groups':>7} {'users':>7} {'changes':>8} "
            f"{'read':>7} {'total':>7} {'x pull':>7} {'peak':>9}")
    print(head)
    print("-" * len(head))
    print(f"{'ldapsearch pull (best of 2)':<34} {'':>6} {'':>7} {'':>7} {'':>8} "
          f"{pull:>6.2f}s {pull:>6.2f}s {1.0:>6.1f}x")
    for label, r in (("full sync, empty store", full), ("no-change full sync", nochange),
                     (f"delta, 100 changed (median of {DELTA_RUNS})", delta)):
        print(f"{label:<34} {r['mode']:>6} {r['groups']:>7} {r['users']:>7} {r['changes']:>8} "
              f"{r['read_s']:>6.2f}s {r['total_s']:>6.2f}s {r['total_s'] / pull:>6.1f}x "
              f"{r['peak_mib']:>5} MiB")
    print(f"{'connector alone: full pull':<34} {'':>6} {alone['groups']:>7} {alone['users']:>7} "
          f"{'':>8} {alone['snapshot_s']:>6.2f}s {alone['snapshot_s']:>6.2f}s "
          f"{alone['snapshot_s'] / pull:>6.1f}x {alone['peak_mib']:>5} MiB")
    print(f"{'connector alone: delta, no change':<34} {'':>6} {'':>7} {'':>7} {'':>8} "
          f"{alone['delta_s']:>6.2f}s {alone['delta_s']:>6.2f}s {alone['delta_s'] / pull:>6.1f}x")
    print("\nread = connector pull (search, decode, map) and source index; total = the whole"
          " sync run in the engine (rules, diff, apply, mirror)")
    print("\ntargets:")
    for key, r in (("full", full), ("nochange", nochange)):
        ratio = r["total_s"] / pull
        print(f"  {key}: {ratio:.1f}x the ldapsearch pull (target < {TARGETS[key]:.0f}x) "
              f"{'ok' if ratio < TARGETS[key] else 'OVER'}")
    runs = ", ".join(f"{r['total_s']:.2f}s" for r in deltas)
    print(f"  delta with 100 changes: {delta['total_s']:.2f}s, the median of {runs} "
          f"(target < 2 s on medium) {'ok' if delta['total_s'] < 2 else 'OVER'}")
    peak = max(r["peak_mib"] for r in (full, nochange, delta))
    print(f"  peak memory: {peak} MiB (target < 1024 MiB on large) "
          f"{'ok' if peak < 1024 else 'OVER'}")


if __name__ == "__main__":
    main()
