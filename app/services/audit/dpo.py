"""The DPO's page: who may open it, consent and withdrawal counts over time, the trail search,
the imports, and the webhook receivers' health."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.chart import Chart, grouped_bars
from app.domain.errors import DomainError
from app.domain.vocabulary import Scope, Status
from app.models import ConsentEvent, ImportJob, OAuthClient, Webhook, WebhookDelivery, utcnow
from app.services import clients
from app.services.audit import trail
from app.services.delivery.webhooks import FAILED, PENDING
from app.services.privacy_center import rights

EVENTS = ConsentEvent.__table__
IMPORTS_SHOWN = 50
# A receiver whose oldest waiting delivery is older than this is lagging: it learns of
# withdrawals late. The sender retries a failing delivery for about a day before it gives up.
LAGGING_AFTER = timedelta(minutes=15)
FAILURE_WINDOW = timedelta(hours=24)
PROBLEMS = ("disabled", "failing", "lagging")  # worst first


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
    requests: list[rights.LoggedRequest] = field(default_factory=list)
    imports: ImportList | None = None
    receivers: list[ReceiverHealth] = field(default_factory=list)

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
    return DpoOverview(
        charts,
        periods,
        events,
        next_after,
        rights.log(session, now=now),
        imports(session),
        receivers(session, now=now),
    )


@dataclass(frozen=True)
class ImportList:
    """The newest imports, and how many there are in all."""

    jobs: list[ImportJob]
    total: int


def imports(session: Session, *, limit: int = IMPORTS_SHOWN) -> ImportList:
    """The newest `limit` import jobs, newest first, with the count of every import."""
    jobs = session.scalars(
        select(ImportJob).order_by(ImportJob.created_at.desc(), ImportJob.id).limit(limit)
    )
    return ImportList(list(jobs), session.scalar(select(func.count()).select_from(ImportJob)) or 0)


@dataclass(frozen=True)
class ReceiverHealth:
    """One webhook receiver as the DPO sees it: whether it still learns of every change."""

    webhook: Webhook
    pending: int
    oldest_pending_at: datetime | None
    failures: int  # deliveries whose last attempt, in the last FAILURE_WINDOW, failed
    last: WebhookDelivery | None  # the delivery tried most recently
    now: datetime
    lagging_after: timedelta = LAGGING_AFTER

    @property
    def host(self) -> str:
        """Where it receives, without the path, query or anything secret in the URL."""
        parts = urlsplit(self.webhook.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}"

    @property
    def event_types(self) -> list[str]:
        return self.webhook.events.split()

    @property
    def is_disabled(self) -> bool:
        return self.webhook.disabled_at is not None

    @property
    def oldest_pending_age(self) -> timedelta | None:
        if self.oldest_pending_at is None:
            return None
        return max(self.now - self.oldest_pending_at, timedelta(0))

    @property
    def is_failing(self) -> bool:
        return self.last is not None and self.last.last_error is not None

    @property
    def is_lagging(self) -> bool:
        age = self.oldest_pending_age
        return age is not None and age > self.lagging_after

    @property
    def problems(self) -> list[str]:
        """What is wrong, worst first: disabled, failing, lagging (empty when healthy)."""
        wrong = (self.is_disabled, self.is_failing, self.is_lagging)
        return [name for name, is_wrong in zip(PROBLEMS, wrong, strict=True) if is_wrong]


def receivers(
    session: Session, *, now: datetime | None = None, lagging_after: timedelta = LAGGING_AFTER
) -> list[ReceiverHealth]:
    """Every receiver, active and disabled, the unhealthy ones first (then by URL)."""
    now = now or utcnow()
    d = WebhookDelivery
    waiting = {
        webhook_id: (count, oldest)
        for webhook_id, count, oldest in session.execute(
            select(d.webhook_id, func.count(), func.min(d.created_at))
            .where(d.status == PENDING)
            .group_by(d.webhook_id)
        )
    }
    failures = dict(
        session.execute(
            select(d.webhook_id, func.count())
            .where(
                d.status.in_([PENDING, FAILED]),
                d.last_error.is_not(None),
                d.last_attempt_at >= now - FAILURE_WINDOW,
            )
            .group_by(d.webhook_id)
        ).all()
    )
    found = []
    for webhook in session.scalars(select(Webhook).order_by(Webhook.created_at, Webhook.id)):
        # Deliveries are tried in the order they were written, so the newest one tried is the
        # last attempt; this order reads the (webhook_id, created_at) index backwards.
        last = session.scalars(
            select(d)
            .where(d.webhook_id == webhook.id, d.last_attempt_at.is_not(None))
            .order_by(d.created_at.desc(), d.event_seq.desc())
            .limit(1)
        ).first()
        count, oldest = waiting.get(webhook.id, (0, None))
        found.append(
            ReceiverHealth(
                webhook,
                count,
                oldest,
                failures.get(webhook.id, 0),
                last,
                now,
                lagging_after,
            )
        )
    return sorted(found, key=lambda r: (_rank(r), r.webhook.url))


def _rank(receiver: ReceiverHealth) -> int:
    """Disabled first, then failing, then lagging, then the healthy ones."""
    problems = receiver.problems
    return PROBLEMS.index(problems[0]) if problems else len(PROBLEMS)


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
