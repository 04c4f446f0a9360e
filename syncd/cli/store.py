"""``syncd db upgrade`` and ``syncd audit``."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from syncd.audit import Audit, records
from syncd.cli.app import format_option, get_app, print_json_lines, print_table
from syncd.errors import UsageError
from syncd.store.names import storable


@click.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the store's schema."""
    before, after = get_app().upgrade_store()
    if before == after:
        click.echo(f"store is up to date (revision {after})")
    else:
        click.echo(f"store upgraded from {before or 'empty'} to revision {after}")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {value!r} is not an ISO 8601 time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@click.command()
@click.option("--run", "run_id", default=None, help="records of one run")
@click.option("--group", default=None, help="records about one group")
@click.option("--user", default=None, help="records about one user")
@click.option("--since", default=None, help="records at or after this ISO 8601 time")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="the newest N records (still printed oldest first)")
@format_option
def audit(run_id: str | None, group: str | None, user: str | None, since: str | None,
          limit: int | None, fmt: str) -> None:
    """Query the audit log, oldest first."""
    query = records()
    t = query.selected_columns
    if run_id:
        query = query.where(t.run_id == run_id)
    if group:
        query = query.where(t.group_name == group)
    if user:
        query = query.where(t.user_name == user)
    since_dt = _since(since)
    if since_dt:
        query = query.where(t.ts >= since_dt)
    query = query.order_by(t.id.desc())
    if limit:
        query = query.limit(limit)
    with get_app().engine(create=False).connect() as conn:
        # A filter no store can hold (PostgreSQL refuses NUL) matches nothing.
        matchable = all(storable(v) for v in (run_id, group, user) if v)
        found = [Audit.from_row(r) for r in conn.execute(query)] if matchable else []
    found.reverse()
    if fmt == "json":
        print_json_lines([r.to_json() for r in found])
        return
    print_table(None, ["time", "actor", "op", "group", "user", "rule", "change"],
                [[r.to_json()["ts"], r.actor, r.op, r.group, r.user, r.rule,
                  _describe(r)] for r in found])


def _describe(r: Audit) -> str:
    if r.before and r.after:
        keys = sorted(set(r.before) | set(r.after))
        return ", ".join(f"{k}: {r.before.get(k)} -> {r.after.get(k)}" for k in keys
                         if r.before.get(k) != r.after.get(k))
    data = r.after or r.before or r.extra or {}
    return ", ".join(f"{k}={v}" for k, v in data.items())
