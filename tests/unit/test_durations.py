"""Durations and cron expressions (syncd/durations.py), checked against real fire times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from syncd.durations import MAX_DURATION, cron_trigger, parse_duration

# A Wednesday.
WEDNESDAY = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("90m", 5400), (" 2h ", 7200),
    ("2 m", 120),
])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "5x", "1.5h", "-5m", "5M", "5 minutes",
                                  "1h30m", "0s", "0d"])
def test_invalid_duration(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def fire_times(expr: str, count: int, start: datetime = WEDNESDAY) -> list[datetime]:
    trigger: Any = cron_trigger(expr)
    out: list[datetime] = []
    previous = None
    now = start
    for _ in range(count):
        nxt = trigger.get_next_fire_time(previous, now)
        assert nxt is not None
        out.append(nxt)
        previous = now = nxt
    return out


def weekdays(expr: str, count: int = 14) -> set[str]:
    return {t.strftime("%a") for t in fire_times(expr, count)}


def test_daily_cron_fires_at_the_given_time_in_utc() -> None:
    times = fire_times("0 3 * * *", 3)
    assert times == [datetime(2026, 11, 19, 3, 0, tzinfo=UTC),
                     datetime(2026, 11, 20, 3, 0, tzinfo=UTC),
                     datetime(2026, 11, 21, 3, 0, tzinfo=UTC)]


def test_minute_fields() -> None:
    # A fire time equal to "now" counts: the first one is 12:00 itself.
    times = fire_times("*/15 * * * *", 5)
    assert [(t.hour, t.minute) for t in times] == [(12, 0), (12, 15), (12, 30), (12, 45),
                                                   (13, 0)]


@pytest.mark.parametrize(("dow", "days"), [
    ("0", {"Sun"}),
    ("7", {"Sun"}),
    ("1", {"Mon"}),
    ("6", {"Sat"}),
    ("1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
    ("0-2", {"Sun", "Mon", "Tue"}),
    ("5-7", {"Fri", "Sat", "Sun"}),
    ("0,6", {"Sat", "Sun"}),
    ("1,3", {"Mon", "Wed"}),
    ("*/2", {"Sun", "Tue", "Thu", "Sat"}),
    ("0-6/2", {"Sun", "Tue", "Thu", "Sat"}),
    ("1-5/2", {"Mon", "Wed", "Fri"}),
    ("sun", {"Sun"}),
    ("mon-fri", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
    ("fri-sun", {"Fri", "Sat", "Sun"}),
    ("7-7", {"Sun"}),
    ("0-7", {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}),
])
def test_day_of_week_is_numbered_from_sunday(dow: str, days: set[str]) -> None:
    assert weekdays(f"0 3 * * {dow}") == days


def test_sunday_cron_fires_on_the_next_sunday() -> None:
    first = fire_times("30 4 * * 0", 1)[0]
    assert first == datetime(2026, 11, 22, 4, 30, tzinfo=UTC)
    assert first.weekday() == 6  # Python: Monday 0 ... Sunday 6


@pytest.mark.parametrize(("expr", "message"), [
    ("0 3 * *", "expected 5 fields, got 4"),
    ("0 3 * * * *", "expected 5 fields, got 6"),
    ("", "expected 5 fields, got 0"),
    ("0 3 * * 8", "day of week 8 is out of range"),
    ("0 3 * * 7-1", "invalid cron expression"),
    ("0 3 * * */0", "invalid cron expression"),
    ("0 3 * * funday", "invalid cron expression"),
    ("0 25 * * *", "invalid cron expression"),
    ("60 3 * * *", "invalid cron expression"),
    ("0 3 32 * *", "invalid cron expression"),
    ("0 3 * 13 *", "invalid cron expression"),
])
def test_invalid_cron(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cron_trigger(expr)


@pytest.mark.parametrize("text", ["99999999999999999999s", "367d", "8785h", "527041m",
                                  "31622401s", "9" * 5000 + "s", "0" * 30 + "367d"])
def test_duration_longer_than_the_maximum(text: str) -> None:
    with pytest.raises(ValueError, match="longer than the maximum of 366d"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["366d", "8784h", "527040m", "31622400s", "000366d"])
def test_duration_up_to_the_maximum(text: str) -> None:
    assert parse_duration(text) == MAX_DURATION == timedelta(days=366)
