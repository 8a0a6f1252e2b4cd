"""One PATCH of preferences in process: statements, round trips, lock hold and CPU.

Each PATCH goes through the app's WSGI callable against a seeded bench database (bench.seed),
rate limits on as configured (RATELIMIT_STORAGE_URL), one writer after another, and flips one
subject's newsletter so that every call writes an event:

    python -m bench.write_stages postgresql+psycopg://postgres@127.0.0.1:5432/cc_bench
    python -m bench.write_stages URL --profile      # and the cProfile's top functions

Printed: statements (cursor executes) and commits with the chain lock held and outside it, the
lock's hold (from `ledger.lock` or `lock_and_read` returning to the commit), CPU per PATCH
(time.process_time), and the part of it spent inside `preferences.change` (the use case) and
outside (auth, limits, the schema, the answer's JSON, Flask). Statements sent in a psycopg
pipeline (the lock with its read, the writes) do not pass the engine's events: the lock's two
are counted by hand, the writes not.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import random
import statistics
import sys
import time
from typing import Any

from flask import Flask
from sqlalchemy import event

from app import create_app
from app.config import Settings
from app.extensions import db
from app.services.consent import ledger, preferences
from bench import check_stages, seed
from bench.check_stages import _token


def _environ(path: str, body: bytes, token: str) -> dict[str, Any]:
    return check_stages._environ(path, "", token) | {
        "REQUEST_METHOD": "PATCH",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }


class Meter:
    """Counts statements and commits inside and outside the lock, and times the lock and the
    use case, by wrapping `ledger.lock`, `ledger.lock_and_read` and `preferences.change` and
    listening on the engine."""

    def __init__(self, app: Flask) -> None:
        self.locked = False
        self.inside = self.outside = self.commits_inside = 0
        self.holds: list[float] = []
        self.use_case_cpu: list[float] = []
        self._locked_at = 0.0
        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        real_lock, real_change = ledger.lock, preferences.change
        real_lock_and_read = ledger.lock_and_read

        def lock(*args: Any, **kwargs: Any) -> Any:
            head = real_lock(*args, **kwargs)
            self.locked, self._locked_at = True, time.perf_counter()
            self.inside += 1  # the lock's own statement, sent before this returns
            self.outside -= 1
            return head

        def lock_and_read(*args: Any, **kwargs: Any) -> Any:
            found = real_lock_and_read(*args, **kwargs)
            if not self.locked:  # PostgreSQL: one pipeline, which the engine's events miss
                self.locked, self._locked_at = True, time.perf_counter()
                self.inside += 2
            return found

        def change(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return real_change(*args, **kwargs)
            finally:
                self.use_case_cpu.append(time.process_time() - started)

        ledger.lock, preferences.change = lock, change  # type: ignore[assignment]
        ledger.lock_and_read = lock_and_read

    def _statement(self, *_args: Any) -> None:
        if self.locked:
            self.inside += 1
        else:
            self.outside += 1

    def _commit(self, *_args: Any) -> None:
        if self.locked:
            self.holds.append((time.perf_counter() - self._locked_at) * 1000)
            self.commits_inside += 1
            self.locked = False


def standing(app: Flask) -> dict[int, str]:
    """The newsletter status by subject number, as it stands."""
    from sqlalchemy import select

    from app.models import ConsentState

    state = ConsentState.__table__.c
    with app.app_context():
        rows = db.session.execute(
            select(state.subject_id, state.status).where(
                state.channel == "email", state.category == "newsletter"
            )
        ).all()
        db.session.rollback()
    return {int(subject_id.rsplit("-", 1)[1], 16): status for subject_id, status in rows}


def patches(
    app: Flask, token: str, current: dict[int, str], n: int, rng: random.Random
) -> list[bytes]:
    """n PATCHes through WSGI, each flipping a random subject's newsletter (`current`, which
    it updates, says what stands), so that each writes an event; their answers."""
    answers = []

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
        assert status.startswith("200"), status

    for _ in range(n):
        i = rng.randrange(10_000)
        wanted = "withdrawn" if current.get(i) == "granted" else "granted"
        current[i] = wanted
        body = json.dumps(
            {"changes": [{"channel": "email", "category": "newsletter", "status": wanted}]}
        ).encode()
        path = f"/v1/subjects/{seed.subject_id_for(i)}/preferences"
        chunks = app(_environ(path, body, token), start_response)
        answers.append(b"".join(chunks))
        getattr(chunks, "close", lambda: None)()
    return answers


def main() -> None:
    url = sys.argv[1]
    profile = "--profile" in sys.argv
    n = 300
    settings = Settings.from_env().with_overrides(
        database_url=url, secret_key=seed.SECRET_KEY, identifier_key=seed.IDENTIFIER_KEY
    )
    app = create_app(settings)
    token = _token(app)
    rng = random.Random(18)
    current = standing(app)
    patches(app, token, current, 50, rng)  # warm: token cached, connections made
    meter = Meter(app)
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall
    if profiler:
        profiler.enable()
    patches(app, token, current, n, rng)
    if profiler:
        profiler.disable()
    cpu = (time.process_time() - started_cpu) / n * 1e6
    wall = (time.perf_counter() - started_wall) / n * 1e6
    use_case = statistics.fmean(meter.use_case_cpu) * 1e6
    print(
        json.dumps(
            {
                "patches": n,
                "statements_locked": meter.inside / n,
                "statements_outside": meter.outside / n,
                "writes": meter.commits_inside,
                "lock_hold_p50_ms": statistics.median(meter.holds) if meter.holds else None,
                "cpu_per_patch_us": round(cpu),
                "wall_per_patch_us": round(wall),
                "use_case_cpu_us": round(use_case),
                "outside_use_case_cpu_us": round(cpu - use_case),
            }
        )
    )
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
