"""The in-memory rate-limit storage: counts and expires like limits' own, with no timer thread;
the database storage: the headers' two questions in one read, hits committed without a wait."""

from __future__ import annotations

import threading
import time
from typing import Any

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Engine, event, text

from app.limits import DatabaseStorage, SweptMemoryStorage, storage_uri
from tests.conftest import DATABASE_URL


def test_memory_uris_map_to_the_swept_storage_and_others_pass_through() -> None:
    assert isinstance(storage_from_string(storage_uri("memory://")), SweptMemoryStorage)
    assert storage_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_hits_are_counted_without_starting_threads() -> None:
    storage = SweptMemoryStorage()
    limiter = FixedWindowRateLimiter(storage)
    limit = RateLimitItemPerSecond(3)
    before = threading.active_count()
    allowed = [limiter.hit(limit, "client-a") for _ in range(5)]
    assert allowed == [True, True, True, False, False]
    assert threading.active_count() == before


def test_expired_keys_are_swept_inline() -> None:
    storage = SweptMemoryStorage()
    storage.SWEEP_EVERY = 0.0
    storage.incr("gone", expiry=0.01)
    time.sleep(0.02)
    storage.incr("other", expiry=60)  # any write sweeps what has expired
    assert "gone" not in storage.storage
    assert storage.get("other") == 1


def test_database_counters_are_counted_in_one_trip_and_do_not_wait_for_a_flush(
    clean_db: Engine,
) -> None:
    storage = DatabaseStorage(f"database+{clean_db.url.render_as_string(hide_password=False)}")
    try:
        assert storage.counted("k", 60) == (1, storage.get_expiry("k"))
        assert storage.counted("k", 60)[0] == storage.get("k") == 2
        if clean_db.dialect.name == "postgresql":
            with storage.engine.connect() as connection:
                assert connection.execute(text("SHOW synchronous_commit")).scalar() == "off"
    finally:
        storage.engine.dispose()


def _reads(engine: Engine) -> list[str]:
    """The counter reads that `engine` sends from now on."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM rate_limit_counters" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    return seen


def test_the_window_stats_read_the_database_once(clean_db: Engine) -> None:
    storage = DatabaseStorage(storage_uri("database://", DATABASE_URL))
    limiter = FixedWindowRateLimiter(storage)
    limit = RateLimitItemPerMinute(5)
    assert [limiter.hit(limit, "client-a") for _ in range(2)] == [True, True]
    seen = _reads(storage.engine)

    reset, remaining = limiter.get_window_stats(limit, "client-a")

    assert len(seen) == 1
    assert remaining == 3
    assert time.time() < reset <= time.time() + 60
    seen.clear()
    assert storage.get_expiry(limit.key_for("client-a")) == reset  # used once: read again
    assert len(seen) == 1
    storage.engine.dispose()
