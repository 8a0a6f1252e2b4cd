"""Suppression's test for one subject, in process: the four reads it was (kept as the test
reference, tests/suppression_reference.py) against the one statement it is (issue 18).

For random seeded subjects (bench.seed: an email and an external id each), asked by email and
subject id as the single check asks: CPU (time.process_time) and wall time per call, best of
interleaved rounds, and the statements per call; then the single check itself
(`checks.check`), whose read now carries the suppression test, with its statements per call.
Run with no suppression in force and with 1,000 entries in force (deleted after).

    python -m bench.suppression_read sqlite:///bench/results/data/sqlite-10k.db [10000]
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, event, text
from sqlalchemy.orm import Session

from app import create_app
from app.config import Settings
from app.domain.identifiers import Identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.extensions import db
from app.models import Suppression
from app.services.consent import checks, suppression
from bench import seed
from tests.suppression_reference import old_is_suppressed

ROUNDS, N = 4, 300


def main() -> None:
    url = sys.argv[1]
    subjects = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    settings = Settings.from_env().with_overrides(
        database_url=url, secret_key=seed.SECRET_KEY, identifier_key=seed.IDENTIFIER_KEY
    )
    app = create_app(settings)
    rules: Rules = app.extensions["rules"]
    print(f"load average {os.getloadavg()[0]:.1f}; {subjects:,} subjects; {url.split(':')[0]}")
    with app.app_context(), Session(db.engine) as session:
        _compare(session, rules, subjects, 0)
        keys = [hashlib.sha256(f"bench-{n}".encode()).hexdigest() for n in range(1000)]
        now = datetime.now(UTC)
        session.add_all(Suppression(hmac=key, kind="email", created_at=now) for key in keys)
        session.commit()
        if db.engine.dialect.name == "postgresql":
            session.execute(text("ANALYZE suppressions"))
            session.commit()
        try:
            _compare(session, rules, subjects, len(keys))
        finally:
            session.rollback()
            session.execute(delete(Suppression).where(Suppression.hmac.in_(keys)))
            session.commit()


def _compare(session: Session, rules: Rules, subjects: int, in_force: int) -> None:
    asked = [random.randrange(subjects) for _ in range(N)]
    cases = [
        (Identifier(IdentifierKind.EMAIL, seed.email_for(i)), seed.subject_id_for(i)) for i in asked
    ]
    question = checks.Question("email", "newsletter")

    def old() -> None:
        for ident, subject_id in cases:
            old_is_suppressed(session, rules, ident=ident, subject_id=subject_id)

    def new() -> None:
        for ident, subject_id in cases:
            suppression.is_suppressed(session, rules, ident=ident, subject_id=subject_id)

    def check() -> None:
        for ident, _ in cases:
            checks.check(session, rules, question, ident=ident)

    runs = (("old", old), ("new", new), ("check", check))
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in runs}
    counts = {name: _statements(session, run) for name, run in runs}
    for _ in range(ROUNDS):
        for name, run in runs:
            figures[name].append(_timed(run))
    print(f"suppressions in force: {in_force:,}")
    for name, label in (
        ("old", "four reads (before)"),
        ("new", "one read (now)"),
        ("check", "checks.check, the read carrying it"),
    ):
        cpu = min(c for c, _ in figures[name]) / N * 1e6
        wall = min(w for _, w in figures[name]) / N * 1e6
        print(
            f"  {label:<36} {cpu:7,.0f} µs CPU {wall:7,.0f} µs wall,"
            f" {counts[name] / N:.1f} statements per call"
        )
    ratio = min(c for c, _ in figures["new"]) / min(c for c, _ in figures["old"])
    print(f"  one read / four reads (CPU): {ratio:.2f}")


def _timed(run: Callable[[], None]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def _statements(session: Session, run: Callable[[], None]) -> int:
    seen = [0]

    def count(*args: Any) -> None:
        seen[0] += 1

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return seen[0]


if __name__ == "__main__":
    main()
