"""Durations (``30s``, ``5m``, ``1h``, ``1d``) and 5-field cron expressions."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# The longest duration syncd accepts: intervals and timeouts beyond a year are mistakes, and
# a bound keeps every duration far inside what timedelta and the schedulers can hold.
MAX_DURATION = timedelta(days=366)

# APScheduler 3 numbers weekdays from Monday=0, cron from Sunday=0: translate to names.
_DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def parse_duration(text: str) -> timedelta:
    """Parse ``<integer><unit>`` with unit s, m, h or d, from 1s up to ``MAX_DURATION``
    (366d); raise ValueError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"invalid duration {text!r}: expected an integer and a unit (s, m, h, d)")
    digits = m.group(1).lstrip("0") or "0"
    # Eleven digits of seconds already exceed the maximum: longer numbers are not converted
    # at all (Python refuses to convert thousands of digits, and timedelta overflows).
    seconds = int(digits) * _UNITS[m.group(2)] if len(digits) <= 11 else None
    if seconds is None or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration {_shown(text)}: longer than the maximum of "
                         f"{MAX_DURATION.days}d")
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    return timedelta(seconds=seconds)


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, shortened when long."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def _dow_number(tok: str) -> int:
    """A cron day-of-week token as a number 0-7 (0 and 7 are Sunday; names allowed)."""
    tok = tok.strip().lower()
    if tok.isdigit():
        n = int(tok)
        if n > 7:
            raise ValueError(f"day of week {n} is out of range (0-7)")
        return n
    if tok in _DOW_NAMES:
        return _DOW_NAMES.index(tok)
    raise ValueError(f"invalid day of week {tok!r}")


def _dow_field(field: str) -> str:
    # Expand to explicit day names: ranges and steps count from Sunday in cron but from
    # Monday in APScheduler, so passing them through would shift the days ("*/2").
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        body, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"invalid step in day of week {item!r}")
        step = int(step_text) if slash else 1
        if body == "*":
            first, last = 0, 6
        elif "-" in body:
            a, b = body.split("-", 1)
            first, last = _dow_number(a), _dow_number(b)
            if last == 0 and first > 0:  # "fri-sun": Sunday as the end of a range is 7
                last = 7
        else:
            first = _dow_number(body)
            last = 7 if slash else first
        if first > last:
            raise ValueError(f"day of week range {body!r} runs backwards")
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_DOW_NAMES[d] for d in sorted(days))


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
