"""``syncd sync``, ``apply``, ``explain`` and ``status``: parse, call the engine, print."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from syncd import render
from syncd.cli.app import console, format_option, get_app, print_json, print_table
from syncd.config.loader import load_rules_file
from syncd.engine import ProgressHook, RunOptions, SyncEngine
from syncd.errors import EXIT_BLOCKED, EXIT_PENDING, EXIT_RUNTIME, UsageError
from syncd.explain import explain_group
from syncd.replay import apply_plan
from syncd.store.schema import tables


@contextmanager
def _progress(enabled: bool) -> Iterator[ProgressHook | None]:
    """A progress bar on stderr when it is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def hook(connector: str, phase: str, done: int, total: int | None) -> None:
            bar.update(task, description=f"{connector}: {phase}", completed=done, total=total)

        yield hook


def _exit_code(status: str, check: bool, changes: int) -> int:
    if status == "failed":
        return EXIT_RUNTIME
    if status == "blocked":
        return EXIT_BLOCKED
    if check and changes:
        return EXIT_PENDING
    return 0


@click.command()
@click.argument("connectors", nargs=-1)
@click.option("--dry-run", is_flag=True, help="plan and show; apply nothing")
@click.option("--check", is_flag=True, help="a dry run whose exit code (4) says whether "
              "anything would change")
@click.option("--full", is_flag=True, help="a complete reconciliation instead of a delta")
@click.option("--force", is_flag=True, help="apply even when a safety check trips")
@click.option("--offline", is_flag=True, help="plan against the mirror of the last complete "
              "snapshot, without contacting the source (always a dry run)")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path),
              help="with --offline: take the rules from this file instead of the config")
@click.option("--plan-out", type=click.Path(dir_okay=False, path_type=Path),
              help="save the plan, for `syncd apply`")
@format_option
@click.pass_context
def sync(ctx: click.Context, connectors: tuple[str, ...], dry_run: bool, check: bool,
         full: bool, force: bool, offline: bool, rules_file: Path | None,
         plan_out: Path | None, fmt: str) -> None:
    """One sync run of the named connectors (all when none are named)."""
    if rules_file and not offline:
        raise UsageError("--rules goes with --offline")
    app = get_app()
    cfg = app.config
    rules = load_rules_file(rules_file, cfg) if rules_file else None
    quiet = ctx.find_root().params.get("quiet", False)
    if plan_out:
        render.check_plan_path(plan_out)
    engine = SyncEngine(cfg, app.engine(), app.audit_writer())
    with _progress(fmt == "table" and not quiet) as hook:
        result = engine.run(list(connectors), RunOptions(
            dry_run=dry_run or check, full=full, force=force, offline=offline, rules=rules,
            progress=hook, state_digest=plan_out is not None))
    if plan_out:
        try:
            render.write_plan_file(plan_out, result, cfg)
        except OSError as exc:  # checked before the run: the disk filled up since
            click.echo(f"syncd: error: --plan-out {plan_out}: cannot write it: "
                       f"{exc.strerror or exc} (the run itself ended as reported)", err=True)
    if fmt == "json":
        print_json(render.to_json(result))
    else:
        render.print_table(console(), result)
    ctx.exit(_exit_code(result.status, check, len(result.plan.changes)))


@click.command("apply")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="apply even though the plan was blocked by a "
              "safety check when it was made")
@format_option
@click.pass_context
def apply_cmd(ctx: click.Context, plan_file: Path, force: bool, fmt: str) -> None:
    """Apply a plan saved with --plan-out, only if the store has not moved since."""
    app = get_app()
    result = apply_plan(plan_file, app.engine(), app.audit_writer(), app.config, force=force)
    if fmt == "json":
        print_json(render.to_json(result))
    else:
        render.print_table(console(), result)
    ctx.exit(_exit_code(result.status, False, 0))


@click.command()
@click.argument("connector")
@click.argument("group")
@format_option
def explain(connector: str, group: str, fmt: str) -> None:
    """Which rule decides a source group (by name, DN or id), and why earlier ones did not."""
    app = get_app()
    report = explain_group(app.config, app.engine_or_empty(), connector, group)
    if fmt == "json":
        print_json(report)
        return
    g = report["group"]
    click.echo(f"{connector}: {g['dn']} (name {g['name']!r}, id {g['id']}; "
               f"from the {report['from']})")
    for d in report["rules"]:
        verdict = "matches" if d["matched"] else "no"
        click.echo(f"  rule {d['rule']}: {verdict}" + (f": {d['reason']}" if d["reason"]
                                                          else ""))
    decision = report["decision"]
    if decision["action"] == "sync":
        click.echo(f"  => synced by rule {decision['rule']} as {decision['group']!r} "
                   f"({decision['kind']}, organisation {decision['organisation']}), "
                   f"{decision['members']} members")
    elif decision["action"] == "skip":
        reason = f": {decision['reason']}" if decision.get("reason") else ""
        click.echo(f"  => skipped by rule {decision['rule']}{reason}")
    else:
        click.echo("  => no rule matches: out of scope")


def _age(ts: datetime | None) -> float | None:
    return None if ts is None else round((datetime.now(UTC) - ts).total_seconds(), 1)


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts else None


@click.command()
@format_option
def status(fmt: str) -> None:
    """Last run of each connector, its outcome, cursor age, next run."""
    app = get_app()
    runs, cursors = tables["runs"], tables["cursors"]
    out: list[dict[str, Any]] = []
    with app.engine(create=False).connect() as conn:
        for c in app.config.connectors:
            last = conn.execute(select(runs).where(runs.c.connector == c.name)
                                .order_by(runs.c.started.desc()).limit(1)).first()
            success = conn.execute(select(func.max(runs.c.finished)).where(
                runs.c.connector == c.name, runs.c.status.in_(("applied", "no_changes"))
            )).scalar()
            cur = conn.execute(select(cursors.c.updated_at).where(
                cursors.c.connector == c.name)).scalar()
            out.append({
                "name": c.name,
                "last_run": None if last is None else {
                    "run_id": last.id, "started": _iso(last.started),
                    "finished": _iso(last.finished), "mode": last.mode,
                    "status": last.status, "changes": (last.counts or {}).get("changes", 0),
                    "error": last.error},
                "last_success": _iso(success),
                "cursor_age_s": _age(cur),
                "next_run": None,
            })
    if fmt == "json":
        print_json({"connectors": out})
        return
    print_table(None, ["connector", "last run", "mode", "status", "changes", "last success",
                       "cursor age"],
                [[c["name"], (c["last_run"] or {}).get("started"),
                  (c["last_run"] or {}).get("mode"), (c["last_run"] or {}).get("status"),
                  (c["last_run"] or {}).get("changes"), c["last_success"],
                  f"{c['cursor_age_s']}s" if c["cursor_age_s"] is not None else None]
                 for c in out])
