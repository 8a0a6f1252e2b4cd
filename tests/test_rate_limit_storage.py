"""The in-memory rate-limit storage: counts and expires like limits' own, with no timer thread;
the database storage: the headers' two questions in one read, none right after a hit, hits
committed without a wait; the Redis storage: limits' own keys and counts, each question in
one round trip, none for the headers right after a hit."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from typing import Any

import pytest
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import RedisStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Engine, event, text

from app.limits import (
    COUNTERS_FILE_SUFFIX,
    CountingRedisStorage,
    DatabaseStorage,
    HitLeases,
    SweptMemoryStorage,
    lease_size,
    storage_uri,
)
from tests.conftest import DATABASE_URL
from tests.redis_store import REDIS_URL, key_prefix, needs_redis


def test_memory_and_redis_uris_map_to_their_storages_and_others_pass_through() -> None:
    assert isinstance(storage_from_string(storage_uri("memory://")), SweptMemoryStorage)
    assert isinstance(storage_from_string(storage_uri(REDIS_URL)), CountingRedisStorage)
    assert storage_uri("valkey://127.0.0.1:6379/0") == "valkey://127.0.0.1:6379/0"


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


def test_on_sqlite_the_counters_live_beside_the_database_and_leave_its_file_alone(
    clean_db: Engine,
) -> None:
    """A write to a SQLite file empties every other connection's page cache: hits counted in
    the data's own file made each check's read start cold."""
    if clean_db.dialect.name != "sqlite":
        assert storage_uri("database://", DATABASE_URL) == f"database+{DATABASE_URL}"
        return
    assert storage_uri("database://", "sqlite:///:memory:") == "database+sqlite:///:memory:"
    uri = storage_uri("database://", DATABASE_URL)
    assert uri == f"database+{DATABASE_URL}{COUNTERS_FILE_SUFFIX}"
    one, other = DatabaseStorage(uri), DatabaseStorage(uri)  # two workers
    with clean_db.connect() as data:
        version = data.exec_driver_sql("PRAGMA data_version").scalar()
        assert [one.counted("k", 60)[0], other.counted("k", 60)[0], one.counted("k", 60)[0]] == [
            1,
            2,
            3,
        ]
        assert data.exec_driver_sql("PRAGMA data_version").scalar() == version
        assert data.exec_driver_sql("SELECT count(*) FROM rate_limit_counters").scalar() == 0
    for storage in (one, other):
        storage.engine.dispose()


def test_a_hit_on_a_broken_connection_fails_once_and_the_next_counts_on_a_fresh_one(
    clean_db: Engine,
) -> None:
    storage = DatabaseStorage(storage_uri("database://", DATABASE_URL))
    try:
        assert storage.counted("k", 60)[0] == 1
        storage.kept._local.connection.driver_connection.close()  # the database dropped it
        with pytest.raises(storage.base_exceptions):
            storage.counted("k", 60)
        assert storage.counted("k", 60)[0] == 2
    finally:
        storage.engine.dispose()


def test_the_connections_threads_keep_for_hits_are_not_the_pools(clean_db: Engine) -> None:
    """However many threads a worker runs, the pool's connections stay free for the rest."""
    storage = DatabaseStorage(storage_uri("database://", DATABASE_URL))
    threads = 6
    counted: list[int] = []
    all_counted, checked = threading.Barrier(threads + 1), threading.Barrier(threads + 1)

    def hit() -> None:
        counted.append(storage.counted("k", 60)[0])
        all_counted.wait()
        checked.wait()  # the thread, and the connection it keeps, live until checked

    workers = [threading.Thread(target=hit) for _ in range(threads)]
    for worker in workers:
        worker.start()
    all_counted.wait()
    try:
        assert sorted(counted) == list(range(1, threads + 1))
        assert storage.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        checked.wait()
        for worker in workers:
            worker.join()
        storage.engine.dispose()


def _reads(storage: DatabaseStorage) -> list[str]:
    """The counter reads that `storage` sends from now on, through its engine or the
    connection it keeps."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM rate_limit_counters" in statement:
            seen.append(statement)

    event.listen(storage.engine, "before_cursor_execute", note)
    fetch_one = storage.kept.fetch_one

    def noted(compiled: tuple[str, Any], params: dict[str, Any]) -> Any:
        note(None, None, compiled[0])
        return fetch_one(compiled, params)

    storage.kept.fetch_one = noted  # type: ignore[method-assign]
    return seen


def test_the_window_stats_read_the_database_once(clean_db: Engine) -> None:
    storage = DatabaseStorage(storage_uri("database://", DATABASE_URL))
    limiter = FixedWindowRateLimiter(storage)
    limit = RateLimitItemPerMinute(5)
    assert [limiter.hit(limit, "client-a") for _ in range(2)] == [True, True]
    assert limiter.hit(limit, "client-b")  # this thread's last hit is another key's
    seen = _reads(storage)

    reset, remaining = limiter.get_window_stats(limit, "client-a")

    assert len(seen) == 1
    assert remaining == 3
    assert time.time() < reset <= time.time() + 60
    seen.clear()
    assert storage.get_expiry(limit.key_for("client-a")) == reset  # used once: read again
    assert len(seen) == 1
    storage.engine.dispose()


def test_the_window_stats_right_after_a_hit_are_the_hits_own(clean_db: Engine) -> None:
    """Flask-Limiter's headers ask the count and the window's end right after the request's
    hit: the hit's own answer gives both (as the fast check's headers), no read. Once only,
    in the thread that hit, and only within HIT_FOR."""
    storage = DatabaseStorage(storage_uri("database://", DATABASE_URL))
    limiter = FixedWindowRateLimiter(storage)
    limit = RateLimitItemPerMinute(5)
    key = limit.key_for("client-a")
    seen = _reads(storage)
    assert limiter.hit(limit, "client-a")
    assert limiter.hit(limit, "client-a")
    reset, remaining = limiter.get_window_stats(limit, "client-a")
    assert (remaining, seen) == (3, [])
    assert time.time() < reset <= time.time() + 60
    assert limiter.get_window_stats(limit, "client-a") == (reset, 3)  # used: read
    assert len(seen) == 1

    seen.clear()
    assert limiter.hit(limit, "client-a")
    elsewhere: list[int] = []
    other = threading.Thread(target=lambda: elsewhere.append(storage.get(key)))
    other.start()
    other.join()
    assert elsewhere == [3]
    assert len(seen) == 1  # another thread reads
    storage.last_hit.within = 0.0  # as if HIT_FOR had passed
    assert storage.get(key) == 3
    assert len(seen) == 2
    storage.engine.dispose()


@needs_redis
def test_redis_counts_as_limits_own_storage_in_one_round_trip_a_question() -> None:
    with key_prefix() as prefix:
        counting = CountingRedisStorage(storage_uri(REDIS_URL), key_prefix=prefix)
        plain = RedisStorage(REDIS_URL, key_prefix=prefix)
        counting.counted("warm", 60)  # the script is loaded once, by the first call
        sent: list[Any] = []
        real = counting.storage.execute_command
        pipelines = counting.storage.pipeline

        def note(*args: Any, **options: Any) -> Any:
            sent.append(args[0])
            return real(*args, **options)

        def noted_pipeline(*args: Any, **options: Any) -> Any:
            sent.append("PIPELINE")
            return pipelines(*args, **options)

        counting.storage.execute_command = note
        counting.storage.pipeline = noted_pipeline
        count, ends = counting.counted("k", 60)
        assert count == 1
        assert ends == pytest.approx(time.time() + 60, abs=1.5)
        assert plain.incr("k", 60) == 2  # the same key, counted by either
        assert counting.counted("k", 60)[0] == 3
        assert len(sent) == 2  # one script call each

        sent.clear()
        limiter = FixedWindowRateLimiter(counting)
        limit = RateLimitItemPerMinute(5)
        assert limiter.hit(limit, "client-a")
        assert len(sent) == 1  # the hit: one script call, its count and time left
        sent.clear()
        assert limiter.get_window_stats(limit, "client-a")[1] == 4
        assert sent == []  # right after the hit: the hit's own answer
        reset, remaining = limiter.get_window_stats(limit, "client-a")
        assert sent == ["PIPELINE"]  # the count and the time left, read together
        plain_reset, plain_remaining = FixedWindowRateLimiter(plain).get_window_stats(
            limit, "client-a"
        )
        assert (remaining, plain_remaining) == (4, 4)
        assert reset == pytest.approx(plain_reset, abs=1.5)
        sent.clear()
        counting.get_expiry(limit.key_for("client-a"))  # used once: asked again
        assert len(sent) == 1


def test_a_lease_is_sized_by_the_limit_and_exact_below_a_thousand() -> None:
    assert [lease_size(n) for n in (1, 5, 999, 1000, 6000, 8000, 10_000_000)] == [
        1,
        1,
        1,
        2,
        12,
        16,
        16,
    ]


@pytest.mark.parametrize("store", ["database", pytest.param("redis", marks=needs_redis)])
def test_leased_hits_are_numbered_once_across_processes_and_admit_at_most_the_limit(
    clean_db: Engine, store: str
) -> None:
    """Two processes (two HitLeases on one store) taking a limit of 50 eight hits a trip:
    no number is handed out twice, no more than 50 are within the limit, and what a process
    held unused is all that is refused early. A new window starts a new lease at 1."""
    with key_prefix() if store == "redis" else nullcontext("") as prefix:
        storage: Any = (
            DatabaseStorage(storage_uri("database://", DATABASE_URL))
            if store == "database"
            else CountingRedisStorage(storage_uri(REDIS_URL), key_prefix=prefix)
        )
        trips: list[int] = []
        counted = storage.counted

        def noted(key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
            trips.append(amount)
            return counted(key, expiry, amount)  # type: ignore[no-any-return]

        storage.counted = noted
        first, second = HitLeases(storage), HitLeases(storage)
        numbers = [(first if n % 3 else second).hit("client-a", 60, 8)[0] for n in range(60)]
        assert numbers[:4] == [1, 9, 10, 2]  # `second` holds 1-8, `first` 9-16
        assert len(set(numbers)) == len(numbers)
        admitted = [n for n in numbers if n <= 50]
        assert 50 - 2 * 7 <= len(admitted) <= 50
        # 40 hits by `first` and 20 by `second`: 5 and 3 leases, each one trip of 8.
        assert trips == [8] * 8
        assert storage.get("client-a") == 64
        # A lease never outlives its window.
        assert first.hit("short", 1, 8)[0] == 1
        time.sleep(2.1)
        assert first.hit("short", 1, 8)[0] == 1
        if store == "database":
            storage.engine.dispose()
