"""Open the store: engine set-up per dialect, and schema creation or migration with Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError as AlembicError
from sqlalchemy import URL, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from syncd.errors import ConfigError, StoreError, UsageError

log = structlog.get_logger("syncd.store")


def resolve_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite path absolute against ``base_dir`` (the config file's folder)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError([f"store.url: invalid SQLAlchemy URL: {exc}"]) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        db = Path(parsed.database)
        if not db.is_absolute():
            parsed = parsed.set(database=str(base_dir / db))
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # 64 MiB of page cache (the default is 2 MiB): large applies insert into indexes at
    # random places, and a small cache turns that into disk reads.
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def open_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store's folder {folder}: "
                                 f"{exc.strerror}") from None
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs["pool_pre_ping"] = True
    try:
        return create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the store driver {exc.name!r} is not installed "
            "(for PostgreSQL: pip install 'syncd[postgresql]')"
        ) from None


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's message on one line, without SQLAlchemy's background link."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc).split("\n(Background on this error")[0]
    return " ".join(text.split())


def location(url: str | URL) -> str:
    """Where a store is, for messages: an SQLite file's path, else the URL without password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def store_failure(url: str | URL, exc: SQLAlchemyError) -> StoreError:
    """The one-line error for a store that failed while in use (a corrupt page, a lost
    server)."""
    return StoreError(f"the store {location(url)} failed: {_reason(exc)}")


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "syncd.store:migrations")
    cfg.attributes["engine"] = engine
    return cfg


def _scripts(engine: Engine) -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config(engine))


def head_revision(engine: Engine) -> str:
    """The newest migration this syncd knows."""
    head = _scripts(engine).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the store is at, or None for an empty store."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _current(engine: Engine) -> str | None:
    """``current_revision``, with a store that cannot be read as a StoreError."""
    try:
        return current_revision(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store {location(engine.url)}: "
                         f"{_reason(exc)}") from None
    except AlembicError as exc:  # e.g. several rows in alembic_version
        raise StoreError(f"cannot open the store {location(engine.url)}: {exc}") from None


def _refuse_unknown(engine: Engine, revision: str) -> None:
    """A revision this syncd has no migration for comes from a newer syncd: never touch it."""
    try:
        known = _scripts(engine).get_revision(revision) is not None
    except AlembicError:
        known = False
    if not known:
        raise StoreError(
            f"the store {location(engine.url)} is at schema revision {revision!r}, unknown to "
            f"this syncd (whose newest is {head_revision(engine)!r}): it was probably "
            "written by a newer syncd; upgrade syncd to use it")


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Create or migrate the schema to the newest revision; return (before, after)."""
    before = _current(engine)
    if before is not None:
        _refuse_unknown(engine, before)
    try:
        command.upgrade(_alembic_config(engine), "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"store upgrade failed: {_reason(exc)}") from None
    return before, head_revision(engine)


class NoStoreError(UsageError):
    """A command that only reads found no store where the config points (exit 2)."""


def _no_store(url: str | URL, origin: str) -> NoStoreError:
    return NoStoreError(f"no syncd store at {location(url)}, where {origin} points: "
                        "create one with 'syncd db upgrade' or a first 'syncd sync'")


def _check_schema(engine: Engine, create: bool, origin: str) -> None:
    """The store is at this syncd's revision; an empty one gets the schema when ``create``."""
    current = _current(engine)
    if current is None:
        try:
            has_tables = bool(inspect(engine).get_table_names())
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store {location(engine.url)}: "
                             f"{_reason(exc)}") from None
        if has_tables:
            raise StoreError(f"the store {location(engine.url)} has tables but no syncd "
                             f"schema version: is {origin} pointing at the right database?")
        if not create:
            raise _no_store(engine.url, origin)
        upgrade(engine)
        log.info("store.created", revision=head_revision(engine))
        return
    _refuse_unknown(engine, current)
    head = head_revision(engine)
    if current != head:
        raise StoreError(f"the store {location(engine.url)} is at schema revision {current}, "
                         f"this syncd needs {head}: run 'syncd db upgrade'")


def ensure_schema(engine: Engine) -> None:
    """Create the schema in an empty store; refuse a store at another revision."""
    _check_schema(engine, create=True, origin="store.url")


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def open_store(url: str, *, create: bool, origin: str = "store.url") -> Engine:
    """An engine on the store at ``url``, its schema checked to be this syncd's.

    A command that writes (``create``) makes a missing store: folder, file and schema. One
    that only reads never does: it raises a UsageError naming the place ``origin`` (the
    config key that gave ``url``) points to.
    """
    path = _sqlite_file(url)
    if not create and path is not None and not path.exists():
        # Connecting would create the file: say so without touching the disk.
        raise _no_store(url, origin)
    engine = open_engine(url)
    try:
        _check_schema(engine, create, origin)
    except BaseException:
        engine.dispose()
        raise
    return engine
