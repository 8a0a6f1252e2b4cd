"""The rights-request log: access, download and erasure requests and their statutory dates."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from app.domain.errors import ConflictError, NotFoundError
from app.models import RightsRequest, new_id, utcnow

KINDS = ("access", "download", "erasure")


def due_date(received_at: datetime) -> datetime:
    """One month after receipt (GDPR Art. 12(3)), the same day next month or its last day."""
    year, month = (
        (received_at.year + 1, 1)
        if received_at.month == 12
        else (
            received_at.year,
            received_at.month + 1,
        )
    )
    day = min(received_at.day, calendar.monthrange(year, month)[1])
    return received_at.replace(year=year, month=month, day=day)


def add(
    session: Session,
    subject_id: str,
    kind: str,
    *,
    received_at: datetime,
    answered_at: datetime | None = None,
    channel: str | None = None,
    note: str | None = None,
) -> RightsRequest:
    """A request row in the caller's transaction (erasure and export log theirs this way)."""
    row = RightsRequest(
        id=new_id(),
        subject_id=subject_id,
        kind=kind,
        received_at=received_at,
        due_at=due_date(received_at),
        answered_at=answered_at,
        channel=channel,
        note=note,
    )
    session.add(row)
    return row


def record(
    session: Session,
    subject_id: str,
    kind: str,
    *,
    received_at: datetime | None = None,
    channel: str | None = None,
    note: str | None = None,
) -> RightsRequest:
    """Log a request that came in (by mail, say) and is yet to be answered."""
    row = add(
        session, subject_id, kind, received_at=received_at or utcnow(), channel=channel, note=note
    )
    session.commit()
    return row


def answer(session: Session, request_id: str, *, now: datetime | None = None) -> RightsRequest:
    row = session.get(RightsRequest, request_id)
    if row is None:
        raise NotFoundError(f"No rights request {request_id}.")
    if row.answered_at is not None:
        raise ConflictError(f"Rights request {request_id} was already answered.")
    row.answered_at = now or utcnow()
    session.commit()
    return row


def listing(
    session: Session, *, overdue: bool = False, now: datetime | None = None, limit: int = 500
) -> list[RightsRequest]:
    """Requests, newest first; with `overdue`, the unanswered ones past their due date."""
    query = select(RightsRequest)
    if overdue:
        query = query.where(
            RightsRequest.answered_at.is_(None), RightsRequest.due_at < (now or utcnow())
        ).order_by(RightsRequest.due_at)
    else:
        query = query.order_by(RightsRequest.received_at.desc())
    return list(session.scalars(query.limit(limit)))


@dataclass(frozen=True)
class LoggedRequest:
    row: RightsRequest
    is_overdue: bool


def log(session: Session, *, now: datetime | None = None, limit: int = 200) -> list[LoggedRequest]:
    """The rights-request log for the DPO: overdue first (oldest due first), then the other
    open ones by due date, then the answered ones, newest first."""
    now = now or utcnow()
    is_open = RightsRequest.answered_at.is_(None)
    rows = session.scalars(
        select(RightsRequest)
        .order_by(
            case((is_open & (RightsRequest.due_at < now), 0), (is_open, 1), else_=2),
            case((is_open, RightsRequest.due_at), else_=None),
            RightsRequest.received_at.desc(),
        )
        .limit(limit)
    )
    return [LoggedRequest(row, row.answered_at is None and row.due_at < now) for row in rows]
