"""The inspection-records database: one engine per ``DATABASE_URL``, schema kept current by Alembic.

SQLite (the default, a file under ``BACKEND_DATA_ROOT``) runs in WAL mode so readers never
block the writer and a killed process leaves a consistent file; PostgreSQL
(``postgresql+psycopg://…``) serves several server processes at once. Every driver error
leaves this module as :class:`DatabaseUnavailable`, so callers answer "try later" instead
of a stack trace.
"""

from __future__ import annotations

import fcntl
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
UPGRADE_LOCK_KEY = 0x616E6F6D616C6961  # "anomalia": one schema upgrade at a time on a shared PostgreSQL
SQLITE_BUSY_TIMEOUT_MS = 10_000


class DatabaseUnavailable(RuntimeError):
    """The records database cannot be reached or written right now; nothing was recorded."""


class DatabaseConfigError(ValueError):
    """``DATABASE_URL`` names a database this server cannot use."""


def default_url(data_root: Path) -> str:
    return f"sqlite:///{Path(data_root).resolve() / 'anomalia.db'}"


def redact(url: str) -> str:
    """``url`` without its password, for logs, errors and ``/config``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable DATABASE_URL>"


def open_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///FILE`` or ``postgresql+psycopg://…``), tuned per dialect."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseConfigError(f"DATABASE_URL is not a database URL: {redact(url)}") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_timeout=10,
                             connect_args={"connect_timeout": 5})
    raise DatabaseConfigError(f"DATABASE_URL must be sqlite:///FILE or postgresql+psycopg://…; got "
                              f"{parsed.get_backend_name()}")


def _sqlite_engine(parsed: Any) -> Engine:
    if not parsed.database or parsed.database == ":memory:":
        raise DatabaseConfigError("DATABASE_URL=sqlite needs a file (sqlite:///path/anomalia.db): an in-memory "
                                  "database would forget every record")
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                 "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; crash-safe
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses nothing committed
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def translated_errors(action: str) -> Iterator[None]:
    """Driver errors as :class:`DatabaseUnavailable`, naming what was being done."""
    try:
        yield
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]
        raise DatabaseUnavailable(f"the records database is unavailable ({action}): {reason}") from None


@contextmanager
def _upgrade_lock(engine: Engine) -> Iterator[None]:
    """One upgrade at a time: an advisory lock on PostgreSQL, a file lock beside a SQLite file."""
    if is_postgresql(engine):
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": UPGRADE_LOCK_KEY})
                connection.commit()
        return
    try:
        handle = open(f"{engine.url.database}.upgrade.lock", "a+")
    except OSError:  # a read-only folder: no other process can be writing the schema there either
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision`` (idempotent; safe when several processes start at once)."""
    from alembic import command

    with translated_errors("upgrading the schema"), _upgrade_lock(engine):
        command.upgrade(alembic_config(engine), revision)
    return current_revision(engine)


@dataclass
class SchemaState:
    """Whether one engine's schema was brought up to date in this process, or why not (for ``/health``)."""

    revision: str | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_SCHEMAS: "weakref.WeakKeyDictionary[Engine, SchemaState]" = weakref.WeakKeyDictionary()
_SCHEMAS_LOCK = threading.Lock()


def schema_state(engine: Engine) -> SchemaState:
    with _SCHEMAS_LOCK:
        return _SCHEMAS.setdefault(engine, SchemaState())


def ensure_schema(engine: Engine) -> str | None:
    """Upgrade the schema once per engine and process, shared by every store on it (records, tokens, jobs);
    tried again on the next call after a failure (``DatabaseUnavailable`` while the database is unreachable)."""
    state = schema_state(engine)
    if state.revision is not None:
        return state.revision
    with state.lock:
        if state.revision is None:
            try:
                state.revision = upgrade(engine)
                state.error = None
            except DatabaseUnavailable as error:
                state.error = str(error)
                raise
    return state.revision


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with translated_errors("reading the schema version"), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()
