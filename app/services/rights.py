"""Data-subject requests (GDPR Art. 12(3)): each one recorded with the month it must be answered in.

Both functions write in the caller's transaction and never commit.
"""

from __future__ import annotations

import calendar
import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from app.models import RightsRequest, utcnow


class Kind(StrEnum):
    ACCESS = "access"
    DOWNLOAD = "download"
    ERASURE = "erasure"


def one_month_after(moment: datetime) -> datetime:
    """The same day of the next month, or its last day when that month is shorter (Art. 12(3))."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def record(
    session: Session,
    subject_id: str,
    kind: Kind,
    *,
    channel: str = "web",
    note: str | None = None,
    now: datetime | None = None,
) -> RightsRequest:
    now = now or utcnow()
    request = RightsRequest(
        id=str(uuid.uuid4()),
        subject_id=subject_id,
        kind=str(kind),
        received_at=now,
        due_at=one_month_after(now),
        answered_at=None,
        channel=channel,
        note=note,
    )
    session.add(request)
    return request


def answer(request: RightsRequest, *, now: datetime | None = None) -> RightsRequest:
    request.answered_at = now or utcnow()
    return request


def served(
    session: Session,
    subject_id: str,
    kind: Kind,
    *,
    channel: str = "web",
    now: datetime | None = None,
) -> RightsRequest:
    """A request answered the moment it came in (self-service pages)."""
    now = now or utcnow()
    return answer(record(session, subject_id, kind, channel=channel, now=now), now=now)
