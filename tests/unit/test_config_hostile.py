"""Hostile and accidental config input: each gives clear FILE:LINE:COL lines, never a crash."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from syncd.config.loader import parse_config
from syncd.errors import ConfigError

FILE = Path("/etc/syncd/syncd.yaml")


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def at(text: str, needle: str, occurrence: int = 1) -> str:
    """``LINE:COL`` (1-based) of the ``occurrence``-th ``needle`` in ``text``."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"{line}:{col}"


def problems(text: str, file: Path = FILE) -> list[str]:
    """The problem lines of an invalid config."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, file)
    assert info.value.exit_code == 2
    return info.value.problems


# -- durations ------------------------------------------------------------------------------


def test_an_oversized_duration_is_reported_with_the_other_errors() -> None:
    text = dedent("""
        version: 1
        colour: red
        connectors:
          - name: d
            type: ldif
            path: x.ldif
            schedule: {delta: 99999999999999999999s}
          - name: e
            type: ldif
            path: y.ldif
            schedule: {delta: 367d, full: "0 3 * * 9"}
    """)
    cron = at(text, '"0 3')
    found = problems(text)
    assert found == [
        f"{FILE}:{at(text, 'colour')}: unknown key 'colour' in the top level",
        f"{FILE}:{at(text, '9999')}: connectors.0.schedule.delta: invalid duration "
        "'99999999999999999999s': longer than the maximum of 366d",
        f"{FILE}:{at(text, '367d')}: connectors.1.schedule.delta: invalid duration '367d': "
        "longer than the maximum of 366d",
        f"{FILE}:{cron}: connectors.1.schedule.full: invalid cron expression "
        "'0 3 * * 9': day of week 9 is out of range (0-7)",
    ]


def test_the_longest_duration_is_accepted() -> None:
    text = dedent("""
        version: 1
        connectors:
          - name: d
            type: ldif
            path: x.ldif
            schedule: {delta: 366d}
    """)
    cfg = parse_config(text, FILE)
    assert cfg.connectors[0].schedule is not None
    assert cfg.connectors[0].schedule.delta == "366d"
