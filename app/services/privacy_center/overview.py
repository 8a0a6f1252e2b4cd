"""The privacy center's read model: everything held on the person, as the overview page shows it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.catalog import Catalog
from app.domain.consent import PreferencesView
from app.domain.inventory import Inventory, Item
from app.domain.rules import Rules
from app.domain.timezones import zone_for_country
from app.models import (
    AccessLog,
    AccessSession,
    ConsentEvent,
    DerivedDatum,
    Evidence,
    NoticeVersion,
    RightsRequest,
    Subject,
    SubjectIdentifier,
    utcnow,
)
from app.services.consent import derived, ledger, notices, subjects
from app.services.privacy_center.access import PrivacyPage, SessionVisit, log_visit, resume


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
    evidence_hash: str | None = None


@dataclass(frozen=True)
class Capture:
    """One act of the person's history: its evidence and wording once, and every event it wrote.

    A sign-up for three topics writes one event per topic (never one bundled event), but it was
    one act from one browser: the history shows its IP address and browser once.
    """

    first: Entry
    entries: tuple[Entry, ...]

    @property
    def has_evidence(self) -> bool:
        return bool(self.first.ip or self.first.user_agent or self.first.country)


def captures(timeline: list[Entry]) -> list[Capture]:
    """Consecutive entries of one act (same evidence, or same time and method) grouped."""
    groups: list[list[Entry]] = []
    for entry in timeline:
        if groups and _same_act(groups[-1][0], entry):
            groups[-1].append(entry)
        else:
            groups.append([entry])
    return [Capture(group[0], tuple(group)) for group in groups]


def _same_act(first: Entry, entry: Entry) -> bool:
    if first.evidence_hash or entry.evidence_hash:
        return first.evidence_hash == entry.evidence_hash
    return (first.occurred_at, first.method, first.source) == (
        entry.occurred_at,
        entry.method,
        entry.source,
    )


@dataclass(frozen=True)
class Derived:
    """A datum we worked out rather than were told, with the inventory item that explains it."""

    item: Item
    row: DerivedDatum

    @property
    def value(self) -> str:
        return self.row.value


@dataclass(frozen=True)
class MapEntry:
    """One datum held on the person: where it came from, under which consent and wording it
    was collected, who receives it, and how long it is kept (the person's data map)."""

    item: Item
    collected_at: datetime | None
    source: str | None
    capture_point: str | None
    method: str | None
    legal_basis: str | None
    notice: NoticeVersion | None
    receivers: tuple[str, ...]


# Which inventory item each identifier kind is.
IDENTIFIER_ITEMS = {"email": "email_address", "phone": "phone_number", "external_id": "external_id"}


def data_map(
    session: Session,
    inventory: Inventory,
    subject: Subject,
    identifiers: list[SubjectIdentifier],
    events: Sequence[ConsentEvent],
    evidence: Mapping[str | None, Evidence],
    derived_data: list[Derived],
    access_log: list[AccessLog],
) -> list[MapEntry]:
    """Per datum held, its origin: the first event recorded with it or after it."""
    held: list[tuple[str, datetime, str | None]] = [
        (IDENTIFIER_ITEMS.get(i.kind, i.kind), i.created_at, None) for i in identifiers
    ]
    if subject.locale:
        held.append(("locale", subject.created_at, None))
    if subject.country:
        held.append(("country", subject.created_at, None))
    for d in derived_data:
        held.append((d.item.key, d.row.derived_at, d.row.capture_point))
    proofs = sorted((e for e in evidence.values() if e.ip or e.user_agent), key=_created)
    if proofs and proofs[0].ip:
        held.append(("ip_address", proofs[0].created_at, None))
    if proofs and proofs[0].user_agent:
        held.append(("user_agent", proofs[0].created_at, None))
    if events:
        held += [("consent_choices", events[0].occurred_at, None)]
        held += [("consent_history", events[0].occurred_at, None)]
    if access_log:
        held.append(("page_access_log", access_log[-1].occurred_at, None))
    entries = []
    for key, at, capture_point in held:
        item = inventory.item(key)
        if item is None:
            continue
        origin = next((e for e in events if e.occurred_at >= at), None)
        if key == "page_access_log":
            origin = None  # opening these pages is not a consent act
        entries.append(
            MapEntry(
                item=item,
                collected_at=at,
                source=origin.source if origin else None,
                capture_point=capture_point or (origin.capture_point if origin else None),
                method=origin.method if origin else None,
                legal_basis=str(item.legal_basis),
                notice=(
                    notices.resolve(session, origin.notice_version, origin.locale)
                    if origin
                    else None
                ),
                receivers=inventory.receivers(key),
            )
        )
    return entries


def _created(row: Evidence) -> datetime:
    return row.created_at


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

    timezone: str | None = None  # the person's zone when the country names one; else UTC
    data_map: list[MapEntry] = field(default_factory=list)

    @property
    def history(self) -> list[Capture]:
        return captures(self.timeline)


def overview(
    session: Session,
    rules: Rules,
    inventory: Inventory,
    within: SessionVisit,
    *,
    page: PrivacyPage = PrivacyPage.OVERVIEW,
    now: datetime | None = None,
) -> PrivacyOverview:
    """Everything held on the person, for the page; logs the opening."""
    now = now or utcnow()
    access = resume(session, within, now=now)
    log_visit(session, access.subject_id, page, within.visit, now)
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
                evidence_hash=event.evidence_hash,
            )
        )
    derived_data = [
        Derived(item, row)
        for row in derived.of_subject(session, subject_id)
        if (item := inventory.item(row.key)) is not None
    ]
    identifiers = identifiers_of(session, subject_id)
    access_log = list(
        session.scalars(
            select(AccessLog)
            .where(AccessLog.subject_id == subject_id)
            .order_by(AccessLog.occurred_at.desc(), AccessLog.id.desc())
            .limit(200)
        )
    )
    return PrivacyOverview(
        subject=subject,
        identifiers=identifiers,
        preferences=ledger.current_view(session, rules, subject_id, now=now),
        timeline=timeline,
        derived=derived_data,
        inventory=inventory,
        controller=rules.catalog.controller,
        access_log=access_log,
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
        timezone=zone_for_country(
            subject.country or next((d.value for d in derived_data), None), now
        ),
        data_map=data_map(
            session, inventory, subject, identifiers, events, evidence, derived_data, access_log
        ),
    )


def labels(catalog: Catalog, locale: str) -> dict[str, str]:
    """Display names of channels, categories and purposes in one locale."""
    names = {c.name: c.label.get(locale) for c in catalog.channels.values()}
    names |= {c.name: c.label.get(locale) for c in catalog.categories.values()}
    names |= {p.name: p.label.get(locale) for p in catalog.purposes.values()}
    return names


def benefits(catalog: Catalog, locale: str) -> dict[str, str]:
    """What the person gets for each category and purpose (the value exchange), in one locale."""
    found = {c.name: c.benefit.get(locale) for c in catalog.categories.values()}
    return found | {p.name: p.benefit.get(locale) for p in catalog.purposes.values()}
