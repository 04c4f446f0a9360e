"""Fixtures shared by every tier: store URLs (SQLite and PostgreSQL), servers, the CLI.

Servers: a test that needs PostgreSQL or slapd calls ``require_server``; in CI (``CI=true``)
a missing server fails the test, elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from syncd.store.db import open_engine, upgrade

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def in_ci() -> bool:
    """True when running in CI, where every server a test needs must be there."""
    return os.environ.get("CI", "").lower() == "true"


def require_server(name: str, reason: str) -> NoReturn:
    """Stop a test that needs the server ``name``: fail in CI, skip elsewhere."""
    message = f"{name} is not available: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: every server must be present)", pytrace=False)
    pytest.skip(message)


def os_user() -> str:
    """The OS user name admin commands record as ``cli:USER``."""
    return getpass.getuser()


# -- PostgreSQL -----------------------------------------------------------------------------


def pg_base_url() -> str:
    """The PostgreSQL database tests create their schemas in."""
    return os.environ.get("SYNCD_TEST_PG_URL") or DEFAULT_PG_URL


@cache
def _pg_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers (checked once per session)."""
    url = pg_base_url()
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 5})
    except ModuleNotFoundError as exc:
        return f"driver {exc.name!r} is not installed (pip install -e '.[test]')"
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "not available"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot connect to {make_url(url).render_as_string()}: {first}"
    finally:
        engine.dispose()
    return None


def _admin_engine() -> Engine:
    return create_engine(pg_base_url(), isolation_level="AUTOCOMMIT",
                         connect_args={"connect_timeout": 5})


def schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with every connection's search_path set to ``schema``."""
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose connections use a fresh, empty schema, dropped afterwards."""
    problem = _pg_problem()
    if problem is not None:
        require_server("PostgreSQL", f"{problem} (set SYNCD_TEST_PG_URL to use another server)")
    schema = f"syncd_test_{uuid.uuid4().hex[:16]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield schema_url(pg_base_url(), schema)
        with admin.connect() as conn:
            # A test that left a transaction open would block the drop: give up after a while.
            conn.execute(text("SET lock_timeout = '20s'"))
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


# -- stores ---------------------------------------------------------------------------------


@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store, once on SQLite (a file in tmp_path), once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'syncd.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store_engine(store_url: str) -> Iterator[Engine]:
    """An engine on ``store_url`` with the schema at head; disposed of afterwards."""
    engine = open_engine(store_url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


# -- the syncd command ----------------------------------------------------------------------


class Result(NamedTuple):
    """What a ``syncd`` run gave: exit code, stdout, stderr."""

    code: int
    stdout: str
    stderr: str


def syncd_command() -> list[str]:
    """The installed ``syncd`` console script (next to this Python, else on PATH)."""
    exe_dir = Path(sys.executable).parent
    for candidate in (exe_dir / "syncd", exe_dir / "syncd.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which("syncd")
    if found:
        return [found]
    pytest.fail("the syncd command is not installed: run pip install -e '.[test]'",
                pytrace=False)


def run_syncd_command(*args: str | Path, config: Path | None = None,
                      env: Mapping[str, str | None] | None = None, cwd: Path | None = None,
                      input: str | None = None, timeout: float = 120) -> Result:
    """Run ``syncd [-c CONFIG] ARGS...`` in a subprocess with a clean environment."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("SYNCD_CONFIG", "CREDENTIALS_DIRECTORY")}
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    argv = [*syncd_command(), *(["-c", str(config)] if config is not None else []),
            *map(str, args)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, cwd=cwd,
                          input=input, timeout=timeout, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run_syncd(tmp_path: Path) -> Callable[..., Result]:
    """``run_syncd(*args, config=None, env=None, cwd=tmp_path)`` -> Result(code, out, err)."""

    def run(*args: str | Path, config: Path | None = None,
            env: Mapping[str, str | None] | None = None, cwd: Path | None = None,
            input: str | None = None, timeout: float = 120) -> Result:
        return run_syncd_command(*args, config=config, env=env, cwd=cwd or tmp_path,
                                 input=input, timeout=timeout)

    return run


def write_config_file(directory: Path, content: str | Mapping[str, Any],
                      name: str = "syncd.yaml", mode: int = 0o600) -> Path:
    """Write a config (YAML text, dedented, or a mapping) into ``directory``; return its path."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    body = (textwrap.dedent(content).lstrip("\n") if isinstance(content, str)
            else yaml.safe_dump(dict(content), sort_keys=False))
    path.write_text(body, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(content, name="syncd.yaml", mode=0o600)``: a config file in tmp_path."""

    def write(content: str | Mapping[str, Any], name: str = "syncd.yaml",
              mode: int = 0o600) -> Path:
        return write_config_file(tmp_path, content, name, mode)

    return write
