"""Engine set-up shared by the Flask app, the CLI and the tests: one behaviour on both databases.

Every session waits a bounded time for a lock, runs a statement a bounded time, and may idle
in a transaction a bounded time (PostgreSQL: lock_timeout, statement_timeout,
idle_in_transaction_session_timeout; SQLite: its busy timeout). Past them the database raises
an OperationalError, which app/errors answers as 503 with Retry-After instead of hanging.
"""

from __future__ import annotations

import time
from collections import namedtuple
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Table,
    any_,
    create_engine,
    event,
    insert,
    literal,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.pool import NullPool


@dataclass(frozen=True)
class Timeouts:
    lock: timedelta = timedelta(seconds=5)
    statement: timedelta = timedelta(seconds=25)
    idle_in_transaction: timedelta = timedelta(seconds=60)


def _ms(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


def engine_options(url: str, timeouts: Timeouts = Timeouts()) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # The driver's own transaction handling is off; SQLAlchemy's "begin" hook below
        # opens each transaction explicitly, so SELECTs are inside it too.
        return {
            "connect_args": {
                "isolation_level": None,
                "timeout": timeouts.lock.total_seconds(),
                "check_same_thread": False,
            }
        }
    options = " ".join(
        (
            f"-c lock_timeout={_ms(timeouts.lock)}",
            f"-c statement_timeout={_ms(timeouts.statement)}",
            f"-c idle_in_transaction_session_timeout={_ms(timeouts.idle_in_transaction)}",
            # Every statement here is an indexed read or write: compiling one (PostgreSQL's
            # JIT, on above a plan cost) took 13 ms of the 80 ms a 10,000-email batch read
            # runs on the server, and nothing was ever run often enough in one plan to repay it.
            "-c jit=off",
        )
    )
    return {
        "pool_size": 5,
        "max_overflow": 10,
        "connect_args": {"options": options},
    }


PING_AFTER_IDLE = 1.0  # seconds a pooled PostgreSQL connection rests before it is pinged


def _rests(_dbapi_connection: Any, record: Any) -> None:
    """Connected or checked in: resting from now."""
    record.info["rested_from"] = time.monotonic()


def _pinging_if_rested(dialect: Dialect) -> Any:
    """The pool's pre-ping (the dialect's own `do_ping`), only for a connection that rested
    PING_AFTER_IDLE or longer: a restarted server, or a firewall's idle timeout, ends
    connections that rest, and one used a moment ago answers anyway. One that does not answer
    is discarded and the pool takes another (SQLAlchemy's DisconnectionError). Under load
    every checkout is of a connection just checked in, so the request is spared the round
    trip `pool_pre_ping` made before each one (docs/hardening.md says what this gives up)."""

    def ping_if_rested(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("rested_from", 0.0) < PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError(str(error)) from error

    return ping_if_rested


SQLITE_MMAP_BYTES = 2 * 1024**3  # address space, not memory (the pages are the OS cache)
SQLITE_CACHE_KIB = 32 * 1024  # per connection, filled only as pages are read


def configure_engine(engine: Engine, timeouts: Timeouts = Timeouts()) -> Engine:
    if engine.dialect.name == "sqlite":
        busy_ms = _ms(timeouts.lock)

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            # Reads through the OS page cache without a copy, and a larger private cache:
            # the batch check's 10,000 index lookups run 1.7x faster (docs/benchmarks.md).
            cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cursor.close()

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    elif not isinstance(engine.pool, NullPool):
        event.listen(engine, "connect", _rests)
        event.listen(engine, "checkin", _rests)
        event.listen(engine, "checkout", _pinging_if_rested(engine.dialect))
    return engine


def make_engine(url: str, *, timeouts: Timeouts = Timeouts(), **options: Any) -> Engine:
    if url.startswith("sqlite") and ":memory:" in url:
        options.setdefault("poolclass", NullPool)
    return configure_engine(
        create_engine(url, **(engine_options(url, timeouts) | options)), timeouts
    )


def make_unpooled_engine(url: str, *, timeouts: Timeouts = Timeouts()) -> Engine:
    """An engine for connections a caller keeps itself (one per thread): no pool, no pre-ping."""
    options = engine_options(url, timeouts)
    for pooling in ("pool_size", "max_overflow"):
        options.pop(pooling, None)
    return configure_engine(create_engine(url, poolclass=NullPool, **options), timeouts)


def make_replica_engine(url: str, *, timeouts: Timeouts = Timeouts()) -> Engine:
    """The read replica: reads only, each statement on its own (autocommit on PostgreSQL)."""
    engine = make_engine(url, timeouts=timeouts)
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


def _sqlite_on_begin(connection: Any) -> None:
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN")


def upsert_insert(dialect: str) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (both PostgreSQL and SQLite spell it alike)."""
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


COPY_FROM = 50  # rows: fewer go as one executemany INSERT, which costs less than a COPY's start


def insert_many(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows (dicts with the same keys) in the session's transaction, in bulk.

    PostgreSQL: `COPY … FROM STDIN` on the session's own connection, once there are enough
    rows for it to pay (an import's chunk); an executemany INSERT otherwise (psycopg
    pipelines it). SQLite: an executemany INSERT, which runs in process.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql" or len(rows) < COPY_FROM:
        connection.execute(insert(table), rows)
        return
    names = list(rows[0])
    columns = ", ".join(f'"{name}"' for name in names)
    driver: Any = connection.connection.driver_connection  # a psycopg.Connection
    with (
        driver.cursor() as cursor,
        cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy,
    ):
        for row in rows:
            copy.write_row([row[name] for name in names])


def analyze(session: Session, tables: Sequence[Table]) -> None:
    """Bring the planner's statistics of `tables` up to date, in the caller's transaction
    (after a bulk write). PostgreSQL's autovacuum may be off, as on this project's machine,
    or minutes behind: right after a 1M-row import into empty tables a check by external id
    was planned from an empty table's numbers (a parallel scan, 50 ms) and took 0.3 ms once
    analysed. SQLite's ANALYZE is sampled the same way (`analysis_limit`)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA analysis_limit=1000"))
        for table in tables:
            session.execute(text(f'ANALYZE "{table.name}"'))
    else:
        session.execute(text("ANALYZE " + ", ".join(f'"{table.name}"' for table in tables)))


def upsert_many(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert rows (dicts with the same keys), or where one with the same `keys` is there set
    its `update` columns, in the session's transaction, in bulk.

    PostgreSQL, with enough rows: `COPY` into a temporary table of the same shape, then one
    `INSERT … SELECT … ON CONFLICT DO UPDATE` (an import chunk's 4,000 state rows were 4,000
    pipelined statements, a third of its client time). Otherwise an executemany upsert.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect != "postgresql" or len(rows) < COPY_FROM:
        statement = upsert_insert(dialect)(table)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c[name] for name in keys],
                set_={name: statement.excluded[name] for name in update},
            ),
            rows,
        )
        return
    names = list(rows[0])
    columns = ", ".join(f'"{name}"' for name in names)
    staged = f'"_upserting_{table.name}"'
    driver: Any = connection.connection.driver_connection  # a psycopg.Connection
    with driver.cursor() as cursor:
        # One per connection, emptied by each commit; emptied here too, for a second batch
        # in one transaction.
        cursor.execute(
            f'CREATE TEMPORARY TABLE IF NOT EXISTS {staged} (LIKE "{table.name}")'
            " ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {staged}")
        with cursor.copy(f"COPY {staged} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[name] for name in names])
        cursor.execute(
            f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM {staged}'
            f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
            + ", ".join(f"{name} = EXCLUDED.{name}" for name in update)
        )


class PreparedSelect:
    """A Core SELECT run on every request of a hot path, as SQLAlchemy would run it but with
    its per-call work done once: compiled once per dialect and once per length of each list
    (IN) parameter (`construct_expanded_state`), sent by `exec_driver_sql` (so SQLAlchemy
    still wraps driver errors, sees the statement and invalidates a dropped connection), its
    rows typed by the columns' own result processors. The check's read on SQLite: 50 µs
    against 148 µs through `Connection.execute`, which computes the cache key, expands the IN
    lists and builds an execution context on each call. `tests/test_prepared_select.py`
    compares the rows with SQLAlchemy's. For statements whose lists are short: each length
    met is a form kept (at most FORMS; more start the store anew)."""

    FORMS = 256

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self.row: Any = namedtuple("Row", statement.selected_columns.keys())  # type: ignore[misc]
        self._processors: dict[str, list[tuple[int, Any]]] = {}  # by dialect: (column, processor)
        self._forms: dict[tuple[Any, ...], _Form] = {}

    def rows(self, session: Session, params: Mapping[str, Any]) -> list[Any]:
        """The statement's rows for `params`, in the session's transaction, or straight on
        the driver's connection when the session carries a `Direct` one."""
        direct: Direct | None = session.info.get(DIRECT)
        if direct is not None:
            return self.typed(direct.dialect, direct.fetchall(*self.bound(direct.dialect, params)))
        connection = session.connection()
        sql, given = self.bound(connection.dialect, params)
        return self.typed(connection.dialect, connection.exec_driver_sql(sql, given).fetchall())

    def bound(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The driver's SQL and parameters for `params` (for a caller that sends them itself)."""
        shape = (dialect.name, *((k, len(v)) for k, v in params.items() if isinstance(v, list)))
        form = self._forms.get(shape) or self._form(shape, dialect, params)
        values = []
        for _, name, index, convert, constant in form.picks:
            value = constant if name is None else params[name]
            value = value if index is None else value[index]
            values.append(value if convert is None else convert(value))
        if form.is_named:
            return form.sql, dict(zip((pick[0] for pick in form.picks), values, strict=True))
        return form.sql, tuple(values)

    def typed(self, dialect: Dialect, raw_rows: Sequence[Sequence[Any]]) -> list[Any]:
        """The driver's rows as the statement's typed rows: each column through its result
        processor, where its type has one (on SQLite times and booleans; on PostgreSQL none)."""
        processors, make = self._processors[dialect.name], self.row._make
        if not processors:
            return [make(raw) for raw in raw_rows]
        rows = []
        for raw in raw_rows:
            values = list(raw)
            for index, process in processors:
                values[index] = process(values[index])
            rows.append(make(values))
        return rows

    def _form(self, shape: tuple[Any, ...], dialect: Dialect, params: Mapping[str, Any]) -> _Form:
        if dialect.name not in self._processors:
            processors = (
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in self.statement.selected_columns
            )
            self._processors[dialect.name] = [
                (index, process) for index, process in enumerate(processors) if process is not None
            ]
        compiled = self.statement.compile(dialect=dialect)
        expanded = compiled.construct_expanded_state(dict(params))
        source = {
            name: (original, index)
            for original, names in expanded.parameter_expansion.items()
            for index, name in enumerate(names)
        }
        order = expanded.positiontup or list(expanded.parameters)
        picks: list[tuple[str, str | None, int | None, Any, Any]] = []
        for name in order:
            original, index = source.get(name, (name, None))
            convert = expanded.processors.get(name)
            if original in params:
                picks.append((name, original, index, convert, None))
            else:  # a value the statement holds (a LIMIT, an OFFSET)
                picks.append((name, None, None, convert, expanded.parameters[name]))
        if len(self._forms) >= self.FORMS:
            self._forms.clear()
        form = self._forms[shape] = _Form(
            expanded.statement, picks, is_named=expanded.positiontup is None
        )
        return form


DIRECT = "direct"  # the `Session.info` key under which a session carries a Direct connection


class Direct:
    """A kept connection in autocommit whose `PreparedSelect` reads go straight to its driver
    connection (`driver_rows`): without the session's transaction bookkeeping and
    SQLAlchemy's result set-up, the fast check's read on SQLite took 71 µs against 151 µs.
    Reads only: each statement is consistent on its own."""

    def __init__(self, connection: Connection) -> None:
        assert connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        self.connection = connection
        self.dialect = connection.dialect
        self.driver: Any = connection.connection.dbapi_connection

    def fetchall(self, sql: str, params: Any) -> list[Any]:
        return driver_rows(self.connection, sql, params, self.driver)


def driver_rows(connection: Connection, sql: str, params: Any, driver: Any = None) -> list[Any]:
    """All rows of `sql` as the driver returns them (plain tuples), run on the connection's
    own driver connection (in its transaction, if one is open): `exec_driver_sql` without
    SQLAlchemy's result, whose rows cost the 10,000-address batch 5 ms of CPU on PostgreSQL. As
    `exec_driver_sql` does, it tells the connection's `before_cursor_execute` and
    `after_cursor_execute` listeners of the statement, raises driver errors as SQLAlchemy's
    (`connection_invalidated` when the database dropped the connection) and invalidates a
    dropped connection."""
    dialect = connection.dialect
    if driver is None:
        driver = connection.connection.dbapi_connection
    dispatch = connection.dispatch
    cursor = driver.cursor()
    try:
        for listener in dispatch.before_cursor_execute:
            listener(connection, cursor, sql, params, None, False)
        cursor.execute(sql, params)
        rows: list[Any] = cursor.fetchall()
        for listener in dispatch.after_cursor_execute:
            listener(connection, cursor, sql, params, None, False)
        return rows
    except dialect.loaded_dbapi.Error as error:
        dropped = dialect.is_disconnect(error, driver, cursor)
        if dropped:
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql, params, error, dialect.loaded_dbapi.Error, connection_invalidated=dropped
        ) from error
    finally:
        cursor.close()


@dataclass(frozen=True)
class _Form:
    """A statement's text for one shape of its parameters: for each parameter the driver
    takes, its name there, the caller's parameter (None: the statement's own `constant`) and
    the index in it (None: not a list), its bind processor and that constant."""

    sql: str
    picks: list[tuple[str, str | None, int | None, Any, Any]]
    is_named: bool


def one_of(
    session: Session, column: ColumnElement[str] | InstrumentedAttribute[str], values: list[str]
) -> ColumnElement[bool]:
    """`column IN values` as the session's database reads it best: on PostgreSQL one array
    parameter (`= ANY`), whose statement text (parsed by the driver, planned by the server) is
    the same however many values; elsewhere IN with a parameter each (`in_parts` bounds them)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(String())))
    return column.in_(values)


def in_parts(session: Session, values: list[str], size: int = 1000) -> Iterator[list[str]]:
    """`values` in lists for `one_of`: one on PostgreSQL, of `size` on SQLite (whose statements
    hold a bounded number of parameters)."""
    if session.get_bind().dialect.name == "postgresql":
        size = max(len(values), 1)
    for start in range(0, len(values), size):
        yield values[start : start + size]
