"""The DPO's page: who may open it, consent and withdrawal counts over time, the trail search."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.chart import Chart, grouped_bars
from app.domain.errors import DomainError
from app.domain.vocabulary import Scope, Status
from app.models import ConsentEvent, OAuthClient, Webhook, utcnow
from app.services import clients
from app.services.audit import trail
from app.services.privacy_center import rights

EVENTS = ConsentEvent.__table__


class LoginError(DomainError):
    """Wrong client id or secret, or a client without audit:read."""


def login(session: Session, client_id: str, secret: str) -> str:
    """The client's session stamp, if it may read the audit trail; else LoginError."""
    row = session.get(OAuthClient, client_id)
    if (
        row is None
        or row.revoked_at is not None
        or Scope.AUDIT_READ not in row.scopes.split()
        or not clients.check_secret(row.secret_hash, secret)
    ):
        raise LoginError("Unknown client, wrong secret, or no audit:read scope.")
    return stamp(row)


def still_allowed(session: Session, client_id: str, expected_stamp: str) -> bool:
    """A session ends when its client is revoked, loses audit:read, or gets a new secret."""
    row = session.get(OAuthClient, client_id)
    ok = (
        row is not None
        and row.revoked_at is None
        and Scope.AUDIT_READ in row.scopes.split()
        and stamp(row) == expected_stamp
    )
    session.commit()  # ends the read transaction; nothing is written
    return ok


def stamp(row: OAuthClient) -> str:
    return hashlib.sha256(f"{row.client_id}:{row.secret_hash}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DpoOverview:
    """The DPO page: monthly consent charts, one page of the event search, the rights log."""

    charts: list[Chart]
    periods: list[str]
    events: list[dict[str, Any]]
    next_after: int | None
    disabled_webhooks: list[Webhook]  # receivers switched off after a day of failed deliveries
    requests: list[rights.LoggedRequest] = field(default_factory=list)

    @property
    def overdue(self) -> int:
        return sum(1 for r in self.requests if r.is_overdue)


def overview(
    session: Session,
    filters: trail.EventFilter,
    *,
    months: int = 12,
    page_size: int = 50,
    now: datetime | None = None,
) -> DpoOverview:
    """Monthly consent and withdrawal counts per category, and one page of the search."""
    now = now or utcnow()
    year, month = now.year, now.month - (months - 1)
    while month <= 0:
        year, month = year - 1, month + 12
    start = datetime(year, month, 1, tzinfo=UTC)
    periods = _months(start, now)
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    month = _month_of(session, EVENTS.c.occurred_at)
    rows = session.execute(
        select(EVENTS.c.category, EVENTS.c.status, month, func.count())
        .where(
            EVENTS.c.occurred_at >= start,
            EVENTS.c.category.is_not(None),
            EVENTS.c.status.in_([str(Status.GRANTED), str(Status.WITHDRAWN)]),
        )
        .group_by(EVENTS.c.category, EVENTS.c.status, month)
    )
    for category, status, period, number in rows:
        counts[category][period][0 if status == str(Status.GRANTED) else 1] += number
    charts = [
        grouped_bars(category, periods, {p: (c[0], c[1]) for p, c in by_month.items()})
        for category, by_month in sorted(counts.items())
    ]
    events, next_after = trail.page(session, filters, page_size)
    disabled = session.scalars(
        select(Webhook).where(Webhook.disabled_at.is_not(None)).order_by(Webhook.disabled_at)
    )
    return DpoOverview(
        charts, periods, events, next_after, list(disabled), rights.log(session, now=now)
    )


def _month_of(session: Session, column: Any) -> Any:
    """'YYYY-MM' of a UTC time, counted by the database rather than row by row in Python."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def _months(start: datetime, end: datetime) -> list[str]:
    found, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found
