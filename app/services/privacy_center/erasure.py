"""The privacy center's erasure: what deleting would remove and keep, and the erasure itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from app.domain.inventory import Inventory, Item
from app.domain.rules import Rules
from app.domain.vocabulary import Method
from app.models import SubjectIdentifier, utcnow
from app.services.consent import ledger, subjects
from app.services.delivery import mail
from app.services.privacy_center.access import (
    PrivacyPage,
    SessionVisit,
    email_of,
    log_visit,
    resume,
)
from app.services.privacy_center.overview import identifiers_of

FINAL_MAIL = "erasure_done"
KEPT_AFTER_ERASURE = ("suppression_entry", "pseudonymous_proof")
# Inventory items that are identifiers: listed for deletion only when the person has one.
IDENTIFIER_ITEMS = {"email": "email_address", "phone": "phone_number", "external_id": "external_id"}


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
    within: SessionVisit,
    *,
    proof_retention: timedelta,
    now: datetime | None = None,
) -> ErasurePlan:
    now = now or utcnow()
    access = resume(session, within, now=now)
    log_visit(session, access.subject_id, PrivacyPage.DELETE, within.visit, now)
    identifiers = identifiers_of(session, access.subject_id)
    held = {IDENTIFIER_ITEMS[i.kind] for i in identifiers if i.kind in IDENTIFIER_ITEMS}
    plan = ErasurePlan(
        [
            i
            for i in inventory.items
            if i.key not in KEPT_AFTER_ERASURE
            and (i.key not in IDENTIFIER_ITEMS.values() or i.key in held)
        ],
        _kept(inventory, now + proof_retention),
        identifiers,
    )
    session.commit()
    return plan


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
    within: SessionVisit,
    *,
    proof_retention: timedelta,
    mail_from: str,
    locale: str | None,
    now: datetime | None = None,
    mail_files: Path | None = None,
) -> ErasureReport:
    """Erase the person and, in the same transaction, queue the mail saying what was kept.

    The erasure deletes the subject's queued mail, so the final one is queued after it with no
    subject id: it is not the subject's mail any more, only a message to an address. The visit
    is not logged: the access log goes with the person.
    """
    now = now or utcnow()
    access = resume(session, within, now=now, touch=False)
    subject = subjects.get(session, access.subject_id)
    address = email_of(session, subject.id)
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
    subjects.apply_erasure(
        session, rules, subject.id, act, now=now, channel="web", mail_files=mail_files
    )
    if address is not None:
        mail.enqueue(session, rendered, to=address, mail_from=mail_from, subject_id=None, now=now)
    session.commit()
    return ErasureReport(now, kept, address is not None)


def _kept(inventory: Inventory, proof_until: datetime) -> list[Kept]:
    return [
        Kept(item, proof_until if item.key == "pseudonymous_proof" else None)
        for key in KEPT_AFTER_ERASURE
        if (item := inventory.item(key)) is not None
    ]
