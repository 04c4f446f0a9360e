"""The linters are part of the test command: ruff and mypy, configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=900, check=False)


@pytest.mark.parametrize("argv", [
    pytest.param(("ruff", "check", "."), id="ruff"),
    pytest.param(("mypy",), id="mypy"),
])
def test_linter_is_clean(argv: tuple[str, ...]) -> None:
    result = run_tool(*argv)
    assert result.returncode == 0, (
        f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
