"""Scheduled jobs shared by any number of workers: claiming a turn, recording how it went.

A turn is claimed by one conditional UPDATE (`next_due_at <= now` → `now + every`): the
database's row lock lets one worker through, and the others then see the row already moved
(PostgreSQL re-checks the WHERE after the lock; SQLite serialises writers). A worker that dies
mid-run leaves the job to its next turn.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from app.database import upsert_insert
from app.models import JobRun, utcnow


def claim(
    session: Session, name: str, every: timedelta, worker: str, *, now: datetime | None = None
) -> bool:
    """True when this worker has the job's turn now; the next turn is `every` later."""
    now = now or utcnow()
    # The UPDATE comes first: on SQLite a read before it would pin a snapshot that a
    # concurrent writer invalidates ("database is locked" at once, without waiting).
    moved = cast(
        CursorResult[tuple[()]],
        session.execute(
            update(JobRun)
            .where(JobRun.name == name, JobRun.next_due_at <= now)
            .values(
                next_due_at=now + every,
                claimed_by=worker,
                started_at=now,
                finished_at=None,
                outcome=None,
            )
        ),
    )
    is_claimed = moved.rowcount == 1
    if not is_claimed:
        # The job's first turn ever: creating its row is the claim, and only one insert wins.
        insert = upsert_insert(session.get_bind().dialect.name)
        created = session.scalar(
            insert(JobRun)
            .values(name=name, next_due_at=now + every, claimed_by=worker, started_at=now)
            .on_conflict_do_nothing(index_elements=[JobRun.name])
            .returning(JobRun.name)
        )
        is_claimed = created is not None
    session.commit()
    return is_claimed


def finish(
    session: Session, name: str, worker: str, outcome: str, *, now: datetime | None = None
) -> None:
    session.execute(
        update(JobRun)
        .where(JobRun.name == name, JobRun.claimed_by == worker)
        .values(finished_at=now or utcnow(), outcome=outcome[:2000])
    )
    session.commit()


def state(session: Session) -> dict[str, JobRun]:
    return {row.name: row for row in session.scalars(select(JobRun))}
