"""Durations (``30s``, ``5m``, ``1h``, ``1d``) and 5-field cron expressions."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# APScheduler 3 numbers weekdays from Monday=0, cron from Sunday=0: translate to names.
_DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def parse_duration(text: str) -> timedelta:
    """Parse ``<integer><unit>`` with unit s, m, h or d; raise ValueError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"invalid duration {text!r}: expected an integer and a unit (s, m, h, d)")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    return timedelta(seconds=seconds)


def _dow_field(field: str) -> str:
    def name(tok: str) -> str:
        if tok.isdigit():
            n = int(tok)
            if n > 7:
                raise ValueError(f"day of week {n} is out of range (0-7)")
            return _DOW_NAMES[n]
        return tok

    out = []
    for item in field.split(","):
        body, slash, step = item.partition("/")
        if "-" in body:
            a, b = body.split("-", 1)
            # A range from Sunday (0) would wrap in Monday-first numbering: split it.
            body = f"sun,mon-{name(b)}" if a == "0" else f"{name(a)}-{name(b)}"
        else:
            body = name(body)
        out.append(body + slash + step)
    return ",".join(out)


def cron_trigger(expr: str, timezone: str | None = None) -> object:
    """Build an APScheduler CronTrigger from a standard 5-field cron string (Sunday is 0 or 7)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"invalid cron expression {expr!r}: expected 5 fields, got {len(fields)}")
    minute, hour, day, month, dow = fields
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_dow_field(dow),
            timezone=timezone or "UTC",
        )
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
