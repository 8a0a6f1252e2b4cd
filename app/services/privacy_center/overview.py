"""The privacy center's read model: everything held on the person, as the overview page shows it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.catalog import Catalog
from app.domain.consent import PreferencesView
from app.domain.inventory import Inventory, Item
from app.domain.rules import Rules
from app.models import (
    AccessLog,
    AccessSession,
    ConsentEvent,
    Evidence,
    NoticeVersion,
    RightsRequest,
    Subject,
    SubjectIdentifier,
    utcnow,
)
from app.services.consent import ledger, notices, subjects
from app.services.privacy_center.access import PrivacyPage, PrivacyVisit, log_visit, resume


@dataclass(frozen=True)
class Entry:
    """One event of the person's history, with the wording they were shown."""

    occurred_at: datetime
    action: str
    channel: str | None
    category: str | None
    purpose: str | None
    status: str | None
    method: str
    source: str | None
    locale: str | None
    notice_version: str | None
    notice: NoticeVersion | None
    ip: str | None
    user_agent: str | None
    country: str | None


@dataclass(frozen=True)
class Derived:
    """A datum we worked out rather than were told, with the inventory item that explains it."""

    item: Item
    value: str


@dataclass(frozen=True)
class PrivacyOverview:
    """Everything held on one person, gathered for the privacy center's pages and download."""

    subject: Subject
    identifiers: list[SubjectIdentifier]
    preferences: PreferencesView
    timeline: list[Entry]
    derived: list[Derived]
    inventory: Inventory
    controller: Mapping[str, str]
    access_log: list[AccessLog]
    requests: list[RightsRequest]
    expires_at: datetime
    generated_at: datetime
    events: list[ConsentEvent]
    evidence: Mapping[str | None, Evidence]


def overview(
    session: Session,
    rules: Rules,
    inventory: Inventory,
    session_id: str | None,
    visit: PrivacyVisit,
    *,
    idle: timedelta,
    page: PrivacyPage = PrivacyPage.OVERVIEW,
    now: datetime | None = None,
) -> PrivacyOverview:
    """Everything held on the person, for the page; logs the opening."""
    now = now or utcnow()
    access = resume(session, session_id, idle=idle, now=now)
    log_visit(session, access.subject_id, page, visit, now)
    held = gather(session, rules, inventory, access, now)
    session.commit()
    return held


def identifiers_of(session: Session, subject_id: str) -> list[SubjectIdentifier]:
    return list(
        session.scalars(
            select(SubjectIdentifier)
            .where(SubjectIdentifier.subject_id == subject_id)
            .order_by(SubjectIdentifier.created_at, SubjectIdentifier.kind)
        )
    )


def gather(
    session: Session, rules: Rules, inventory: Inventory, access: AccessSession, now: datetime
) -> PrivacyOverview:
    """Read everything held on the session's subject; writes nothing."""
    subject_id = access.subject_id
    subject = subjects.get(session, subject_id)
    events, evidence = ledger.history(session, subject_id)
    timeline = []
    for event in reversed(events):
        proof = evidence.get(event.evidence_hash)
        timeline.append(
            Entry(
                occurred_at=event.occurred_at,
                action=event.action,
                channel=event.channel,
                category=event.category,
                purpose=event.purpose,
                status=event.status,
                method=event.method,
                source=event.source,
                locale=event.locale,
                notice_version=event.notice_version,
                notice=notices.resolve(session, event.notice_version, event.locale),
                ip=proof.ip if proof else None,
                user_agent=proof.user_agent if proof else None,
                country=proof.country if proof else None,
            )
        )
    country = subject.country or next((e.country for e in timeline if e.country), None)
    derived = []
    for item in inventory.items:
        if item.is_derived and item.key == "country" and country:
            derived.append(Derived(item, country))
    return PrivacyOverview(
        subject=subject,
        identifiers=identifiers_of(session, subject_id),
        preferences=ledger.current_view(session, rules, subject_id, now=now),
        timeline=timeline,
        derived=derived,
        inventory=inventory,
        controller=rules.catalog.controller,
        access_log=list(
            session.scalars(
                select(AccessLog)
                .where(AccessLog.subject_id == subject_id)
                .order_by(AccessLog.occurred_at.desc(), AccessLog.id.desc())
                .limit(200)
            )
        ),
        requests=list(
            session.scalars(
                select(RightsRequest)
                .where(RightsRequest.subject_id == subject_id)
                .order_by(RightsRequest.received_at.desc())
            )
        ),
        expires_at=access.expires_at,
        generated_at=now,
        events=events,
        evidence=evidence,
    )


def labels(catalog: Catalog, locale: str) -> dict[str, str]:
    """Display names of channels, categories and purposes in one locale."""
    names = {c.name: c.label.get(locale) for c in catalog.channels.values()}
    names |= {c.name: c.label.get(locale) for c in catalog.categories.values()}
    names |= {p.name: p.label.get(locale) for p in catalog.purposes.values()}
    return names
