"""Open the store: engine set-up per dialect, and schema creation or migration with Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from syncd.errors import ConfigError, StoreError

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


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "syncd.store:migrations")
    cfg.attributes["engine"] = engine
    return cfg


def head_revision(engine: Engine) -> str:
    """The newest migration this syncd knows."""
    head = ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the store is at, or None for an empty store."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Create or migrate the schema to the newest revision; return (before, after)."""
    try:
        before = current_revision(engine)
        command.upgrade(_alembic_config(engine), "head")
        return before, head_revision(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"store upgrade failed: {_reason(exc)}") from None


def ensure_schema(engine: Engine) -> None:
    """Create the schema in an empty store; refuse a store at another revision."""
    try:
        current = current_revision(engine)
        if current is None:
            if inspect(engine).get_table_names():
                raise StoreError("the store has tables but no syncd schema version: "
                                 "is store.url pointing at the right database?")
            upgrade(engine)
            log.info("store.created", revision=head_revision(engine))
            return
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store: {_reason(exc)}") from None
    head = head_revision(engine)
    if current != head:
        raise StoreError(f"the store schema is at revision {current}, this syncd needs {head}: "
                         "run 'syncd db upgrade'")
