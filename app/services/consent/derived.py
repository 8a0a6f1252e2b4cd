"""Derived data: what is worked out about a person rather than given, kept with its origin.

Today that is the country estimated from the IP address at sign-up, computed on this machine
(app/domain/geolocation.py). A country the person or the API gives is stored as given on the
subject and is never overwritten or shadowed by an estimate.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.domain.geolocation import estimate_country
from app.models import DerivedDatum, Subject, new_id

ESTIMATED_COUNTRY = "estimated_country"


def note_country(
    session: Session, subject: Subject, ip: str | None, capture_point: str | None, now: datetime
) -> DerivedDatum | None:
    """Estimate the country from the IP when none was given; runs in the caller's transaction.

    One estimate per person: a later sign-up from elsewhere replaces the earlier one.
    """
    if subject.country:
        return None
    estimate = estimate_country(ip)
    if estimate is None:
        return None
    session.execute(
        delete(DerivedDatum).where(
            DerivedDatum.subject_id == subject.id, DerivedDatum.key == ESTIMATED_COUNTRY
        )
    )
    row = DerivedDatum(
        id=new_id(),
        subject_id=subject.id,
        key=ESTIMATED_COUNTRY,
        value=estimate.country,
        source=estimate.source,
        method=estimate.method,
        capture_point=capture_point,
        derived_at=now,
    )
    session.add(row)
    return row


def of_subject(session: Session, subject_id: str) -> list[DerivedDatum]:
    return list(
        session.scalars(
            select(DerivedDatum)
            .where(DerivedDatum.subject_id == subject_id)
            .order_by(DerivedDatum.derived_at)
        )
    )


def data(row: DerivedDatum) -> dict[str, object]:
    """The wire shape of one derived datum (API export and the person's download)."""
    return {
        "key": row.key,
        "value": row.value,
        "is_estimated": True,
        "source": row.source,
        "method": row.method,
        "capture_point": row.capture_point,
        "derived_at": row.derived_at,
    }
