"""The pooled PostgreSQL engine pings a connection only after it rested: one used a moment
ago is handed out as it is (no round trip), one that rested is pinged first, and one the
server ended while it rested is replaced before anybody uses it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from app import database
from app.database import make_engine


@pytest.fixture
def pooled(clean_db: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, list[Any]]]:
    """A pooled engine as the app makes it, with its pings counted and a short rest."""
    if clean_db.dialect.name != "postgresql":
        pytest.skip("SQLite's connections are files: nothing to ping, nothing the server ends")
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 0.2)
    engine = make_engine(clean_db.url.render_as_string(hide_password=False))
    pings: list[Any] = []
    do_ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return do_ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    yield engine, pings
    engine.dispose()


def _backend(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_used_a_moment_ago_is_not_pinged_and_a_rested_one_is(
    pooled: tuple[Engine, list[Any]],
) -> None:
    engine, pings = pooled
    first = _backend(engine)  # a new connection: just made, not pinged
    assert [_backend(engine) for _ in range(3)] == [first] * 3
    assert pings == []
    time.sleep(0.3)
    assert _backend(engine) == first
    assert len(pings) == 1


def test_a_rested_connection_the_server_ended_is_replaced_before_it_is_used(
    pooled: tuple[Engine, list[Any]], clean_db: Engine
) -> None:
    """As after a restart or a failover: the next request gets a working connection."""
    engine, pings = pooled
    first = _backend(engine)
    with clean_db.connect() as other:
        other.execute(text(f"SELECT pg_terminate_backend({first})"))
    time.sleep(0.3)
    second = _backend(engine)  # no error: the ping found it dead, the pool made another
    assert second != first
    assert len(pings) == 1
