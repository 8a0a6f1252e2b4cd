"""The privacy security center: what is held on a person, shown only after a fresh mailbox proof.

A preference link (which may have been forwarded) only lets its holder ask for an access link
by mail. That link is short-lived and single-use, and opens a server-side session: the cookie
carries a random id, the table only its hash. Every use case here takes that id and checks it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.domain.catalog import Catalog
from app.domain.consent import PreferencesView, preferences_view
from app.domain.errors import DomainError, InvalidTokenError, UsedTokenError
from app.domain.inventory import Inventory, Item
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Method
from app.models import (
    AccessLog,
    AccessSession,
    ConsentEvent,
    Evidence,
    NoticeVersion,
    OutboxMessage,
    RightsRequest,
    Subject,
    SubjectIdentifier,
    UsedToken,
    utcnow,
)
from app.services.consent import ledger, notices, subjects, suppression
from app.services.delivery import mail
from app.services.privacy_center import rights
from app.services.tokens import Purpose, Tokens, spend, token_hash

ACCESS_MAIL = "access_link"
FINAL_MAIL = "erasure_done"
# One access mail per subject per this gap, however often the button is pressed.
MAIL_GAP = timedelta(minutes=5)
KEPT_AFTER_ERASURE = ("suppression_entry", "pseudonymous_proof")
# Inventory items that are identifiers: listed for deletion only when the person has one.
IDENTIFIER_ITEMS = {"email": "email_address", "phone": "phone_number", "external_id": "external_id"}
EXPORT_SCHEMA = "https://consent-center.example/schemas/privacy-export/1"


class AccessSessionError(DomainError):
    """No valid privacy session: none, unknown, ended, or idle for too long."""


class Page(StrEnum):
    ACCESS_LINK = "access_link"
    OVERVIEW = "privacy"
    PRINT = "print"
    DOWNLOAD = "download"
    DELETE = "delete"


@dataclass(frozen=True)
class Visit:
    """Where a page was opened from, for the access log."""

    ip: str | None
    user_agent: str | None


def subject_for_preference_link(session: Session, tokens: Tokens, token: str) -> str:
    """The subject a preference link names; such a link never opens personal data by itself."""
    payload = tokens.open(Purpose.PREFERENCES, token).payload
    subject_id = payload.get("s")
    if not isinstance(subject_id, str):
        raise InvalidTokenError("This link is not valid.")
    subjects.get(session, subject_id)
    return subject_id


def request_access(
    session: Session,
    tokens: Tokens,
    templates: mail.MailTemplates,
    token: str,
    *,
    base_url: str,
    mail_from: str,
    locale: str | None,
    now: datetime | None = None,
) -> bool:
    """Mail a fresh access link to the subject's own address; False when one went out just now.

    The caller answers the same either way, so the page tells nobody whether a mail was sent.
    """
    now = now or utcnow()
    subject_id = subject_for_preference_link(session, tokens, token)
    subject = subjects.get(session, subject_id)
    address = _email(session, subject_id)
    if address is None:
        raise AccessSessionError("There is no email address to send a link to.")
    recent = session.scalar(
        select(
            exists().where(
                OutboxMessage.subject_id == subject_id,
                OutboxMessage.template == ACCESS_MAIL,
                OutboxMessage.created_at > now - MAIL_GAP,
            )
        )
    )
    if recent:
        return False
    access = tokens.make(Purpose.ACCESS, {"s": subject_id, "n": secrets.token_hex(8)})
    ttl_minutes = int(tokens.ttl(Purpose.ACCESS).total_seconds() // 60)
    rendered = templates.render(
        ACCESS_MAIL,
        locale or subject.locale,
        {"url": f"{base_url}/access/{access}", "minutes": ttl_minutes},
    )
    mail.enqueue(session, rendered, to=address, mail_from=mail_from, subject_id=subject_id, now=now)
    session.commit()
    return True


def check_access_link(session: Session, tokens: Tokens, token: str) -> None:
    """Raise if the link is forged, expired, used, or its subject erased; change nothing."""
    subject_id = _access_subject(tokens, token)
    if session.get(UsedToken, token_hash(token)) is not None:
        raise UsedTokenError("This link was already used.")
    subjects.get(session, subject_id)


@dataclass(frozen=True)
class OpenedSession:
    session_id: str
    subject_id: str
    expires_at: datetime


def open_session(
    session: Session,
    tokens: Tokens,
    token: str,
    visit: Visit,
    *,
    idle: timedelta,
    now: datetime | None = None,
) -> OpenedSession:
    """Spend the access link and open a session; the access is answered as a rights request."""
    now = now or utcnow()
    opened = tokens.open(Purpose.ACCESS, token)
    subject_id = opened.payload.get("s")
    if not isinstance(subject_id, str):
        raise InvalidTokenError("This link is not valid.")
    subjects.get(session, subject_id)
    spend(session, token, Purpose.ACCESS, opened.issued_at + tokens.ttl(Purpose.ACCESS), now=now)
    session_id = secrets.token_urlsafe(32)
    session.add(
        AccessSession(
            id_hash=token_hash(session_id),
            subject_id=subject_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + idle,
        )
    )
    _log(session, subject_id, Page.ACCESS_LINK, visit, now)
    rights.add(session, subject_id, "access", received_at=now, answered_at=now, channel="web")
    session.commit()
    return OpenedSession(session_id, subject_id, now + idle)


def end_session(session: Session, session_id: str | None) -> None:
    if session_id:
        row = session.get(AccessSession, token_hash(session_id))
        if row is not None:
            session.delete(row)
    session.commit()


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
class Overview:
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
    visit: Visit,
    *,
    idle: timedelta,
    page: Page = Page.OVERVIEW,
    now: datetime | None = None,
) -> Overview:
    """Everything held on the person, for the page; logs the opening."""
    now = now or utcnow()
    access = _resume(session, session_id, idle=idle, now=now)
    _log(session, access.subject_id, page, visit, now)
    session.commit()
    return _gather(session, rules, inventory, access, now)


def download(
    session: Session,
    rules: Rules,
    inventory: Inventory,
    session_id: str | None,
    visit: Visit,
    *,
    idle: timedelta,
    locale: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The machine-readable copy (Art. 15(3), Art. 20), as JSON-ready data.

    The shape of the API's subject export, plus the inventory, the derived data and the access
    log; app/data/privacy-export.schema.json documents it.
    """
    now = now or utcnow()
    access = _resume(session, session_id, idle=idle, now=now)
    _log(session, access.subject_id, Page.DOWNLOAD, visit, now)
    rights.add(
        session, access.subject_id, "download", received_at=now, answered_at=now, channel="web"
    )
    session.commit()
    held = _gather(session, rules, inventory, access, now)
    notices_shown = {(n.key, n.version, n.locale): n for e in held.timeline if (n := e.notice)}
    data = {
        "$schema": EXPORT_SCHEMA,
        "generated_at": now,
        "language": locale,
        "controller": dict(rules.catalog.controller),
        "subject_id": held.subject.id,
        "created_at": held.subject.created_at,
        "locale": held.subject.locale,
        "country": held.subject.country,
        "identifiers": [subjects.identifier_data(i) for i in held.identifiers],
        "preferences": held.preferences.as_data(),
        "events": [
            event.record()
            | {"evidence": subjects.evidence_data(held.evidence.get(event.evidence_hash))}
            for event in held.events
        ],
        "notices": [subjects.notice_data(n) for _, n in sorted(notices_shown.items())],
        "rights_requests": [subjects.rights_request_data(r) for r in reversed(held.requests)],
        "derived": [
            {"key": d.item.key, "label": d.item.label.get(locale), "value": d.value}
            for d in held.derived
        ],
        "access_log": [
            {"occurred_at": r.occurred_at, "page": r.page, "ip": r.ip, "user_agent": r.user_agent}
            for r in held.access_log
        ],
        "inventory": [_item_data(item, locale) for item in inventory.items],
        "security_measures": list(inventory.measures(locale)),
    }
    return _plain(data)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Kept:
    item: Item
    until: datetime | None  # None: for as long as the item's retention text says


@dataclass(frozen=True)
class ErasurePlan:
    deleted: list[Item]
    kept: list[Kept]
    identifiers: list[SubjectIdentifier]


def erasure_plan(
    session: Session,
    inventory: Inventory,
    session_id: str | None,
    visit: Visit,
    *,
    idle: timedelta,
    proof_retention: timedelta,
    now: datetime | None = None,
) -> ErasurePlan:
    now = now or utcnow()
    access = _resume(session, session_id, idle=idle, now=now)
    _log(session, access.subject_id, Page.DELETE, visit, now)
    session.commit()
    identifiers = _identifiers(session, access.subject_id)
    held = {IDENTIFIER_ITEMS[i.kind] for i in identifiers if i.kind in IDENTIFIER_ITEMS}
    return ErasurePlan(
        [
            i
            for i in inventory.items
            if i.key not in KEPT_AFTER_ERASURE
            and (i.key not in IDENTIFIER_ITEMS.values() or i.key in held)
        ],
        _kept(inventory, now + proof_retention),
        identifiers,
    )


@dataclass(frozen=True)
class ErasureReport:
    erased_at: datetime
    kept: list[Kept]
    mailed: bool


def erase(
    session: Session,
    rules: Rules,
    inventory: Inventory,
    templates: mail.MailTemplates,
    session_id: str | None,
    *,
    idle: timedelta,
    proof_retention: timedelta,
    mail_from: str,
    locale: str | None,
    now: datetime | None = None,
) -> ErasureReport:
    """Erase the person and, in the same transaction, queue the mail saying what was kept.

    The erasure deletes the subject's queued mail, so the final one is queued after it with no
    subject id: it is not the subject's mail any more, only a message to an address.
    """
    now = now or utcnow()
    access = _resume(session, session_id, idle=idle, now=now, touch=False)
    subject = subjects.get(session, access.subject_id)
    address = _email(session, subject.id)
    kept = _kept(inventory, now + proof_retention)
    language = locale or subject.locale
    rendered = templates.render(
        FINAL_MAIL,
        language,
        {
            "erased_at": now,
            "kept": [
                {
                    "label": k.item.label.get(language),
                    "purpose": k.item.purpose.get(language),
                    "retention": k.item.retention.get(language),
                    "until": k.until.date().isoformat() if k.until else None,
                }
                for k in kept
            ],
        },
    )
    act = ledger.Act(actor="subject", method=Method.PREFERENCE_PAGE, source="privacy-center")
    subjects.erase(session, rules, subject.id, act, now=now, commit=False)
    if address is not None:
        mail.enqueue(session, rendered, to=address, mail_from=mail_from, subject_id=None, now=now)
    _erasure_request(session, subject.id, now)
    session.commit()
    return ErasureReport(now, kept, address is not None)


def _erasure_request(session: Session, subject_id: str, now: datetime) -> None:
    """Log the erasure as a request from the web, once, even if subjects.erase logged it too."""
    logged = session.scalar(
        select(RightsRequest).where(
            RightsRequest.subject_id == subject_id,
            RightsRequest.kind == "erasure",
            RightsRequest.received_at == now,
        )
    )
    if logged is None:
        rights.add(session, subject_id, "erasure", received_at=now, answered_at=now, channel="web")
    else:
        logged.channel = "web"


def _access_subject(tokens: Tokens, token: str) -> str:
    subject_id = tokens.open(Purpose.ACCESS, token).payload.get("s")
    if not isinstance(subject_id, str):
        raise InvalidTokenError("This link is not valid.")
    return subject_id


def _resume(
    session: Session,
    session_id: str | None,
    *,
    idle: timedelta,
    now: datetime,
    touch: bool = True,
) -> AccessSession:
    """The live session behind a cookie; each use pushes its idle deadline forward."""
    row = session.get(AccessSession, token_hash(session_id)) if session_id else None
    if row is None:
        raise AccessSessionError("Your secure session has ended.")
    if row.expires_at <= now:
        session.delete(row)
        session.commit()
        raise AccessSessionError("Your secure session has ended.")
    if touch:
        row.last_seen_at, row.expires_at = now, now + idle
    return row


def _log(session: Session, subject_id: str, page: Page, visit: Visit, now: datetime) -> None:
    session.add(
        AccessLog(
            subject_id=subject_id,
            occurred_at=now,
            page=page.value,
            ip=visit.ip,
            user_agent=visit.user_agent,
        )
    )


def _email(session: Session, subject_id: str) -> str | None:
    return session.scalar(
        select(SubjectIdentifier.value)
        .where(
            SubjectIdentifier.subject_id == subject_id,
            SubjectIdentifier.kind == str(IdentifierKind.EMAIL),
        )
        .order_by(SubjectIdentifier.created_at)
        .limit(1)
    )


def _identifiers(session: Session, subject_id: str) -> list[SubjectIdentifier]:
    return list(
        session.scalars(
            select(SubjectIdentifier)
            .where(SubjectIdentifier.subject_id == subject_id)
            .order_by(SubjectIdentifier.created_at, SubjectIdentifier.kind)
        )
    )


def _kept(inventory: Inventory, proof_until: datetime) -> list[Kept]:
    return [
        Kept(item, proof_until if item.key == "pseudonymous_proof" else None)
        for key in KEPT_AFTER_ERASURE
        if (item := inventory.item(key)) is not None
    ]


def _gather(
    session: Session, rules: Rules, inventory: Inventory, access: AccessSession, now: datetime
) -> Overview:
    subject_id = access.subject_id
    subject = subjects.get(session, subject_id)
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.subject_id == subject_id).order_by(ConsentEvent.seq)
    ).all()
    evidence: dict[str | None, Evidence] = {
        row.hash: row
        for row in session.scalars(select(Evidence).where(Evidence.subject_id == subject_id))
    }
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
    return Overview(
        subject=subject,
        identifiers=_identifiers(session, subject_id),
        preferences=preferences_view(
            rules.catalog,
            ledger.standings(session, subject_id),
            is_suppressed=suppression.is_suppressed(session, rules, subject_id=subject_id),
            now=now,
            max_age=rules.max_consent_age,
        ),
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
        events=list(events),
        evidence=evidence,
    )


def labels(catalog: Catalog, locale: str) -> dict[str, str]:
    """Display names of channels, categories and purposes in one locale."""
    names = {c.name: c.label.get(locale) for c in catalog.channels.values()}
    names |= {c.name: c.label.get(locale) for c in catalog.categories.values()}
    names |= {p.name: p.label.get(locale) for p in catalog.purposes.values()}
    return names


def _item_data(item: Item, locale: str) -> dict[str, Any]:
    return {
        "key": item.key,
        "label": item.label.get(locale),
        "derived": item.is_derived,
        "legal_basis": str(item.legal_basis),
        "purpose": item.purpose.get(locale),
        "retention": item.retention.get(locale),
        "recipients": list(item.recipients),
    }


def _plain(value: Any) -> Any:
    """Datetimes as ISO 8601 strings, enums as their values, all the way down."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)
