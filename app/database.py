"""Engine set-up shared by the Flask app, the CLI and the tests: one behaviour on both databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import NullPool


def engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # The driver's own transaction handling is off; SQLAlchemy's "begin" hook below
        # opens each transaction explicitly, so SELECTs are inside it too.
        return {
            "connect_args": {"isolation_level": None, "timeout": 30, "check_same_thread": False}
        }
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def configure_engine(engine: Engine) -> Engine:
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def make_engine(url: str, **options: Any) -> Engine:
    if url.startswith("sqlite") and ":memory:" in url:
        options.setdefault("poolclass", NullPool)
    return configure_engine(create_engine(url, **(engine_options(url) | options)))


def make_replica_engine(url: str) -> Engine:
    """The read replica: reads only, each statement on its own (autocommit on PostgreSQL)."""
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")
