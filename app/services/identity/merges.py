"""Merging two subjects found to be one person: identifiers and history move to the survivor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.domain.consent import ALL_MARKETING, legal_basis
from app.domain.errors import ConflictError
from app.domain.identity import merged_statuses, needs_all_marketing_again
from app.domain.rules import Rules
from app.domain.vocabulary import Action, Status
from app.models import (
    AccessLog,
    AccessSession,
    Evidence,
    OutboxMessage,
    RightsRequest,
    SubjectIdentifier,
    SubscriptionRequest,
    utcnow,
)
from app.services.consent import ledger, subjects

# Rows that follow the person: the events themselves stay where the chain put them, and the
# survivor's history is read over every id merged into it (subjects.merged_ids).
_MOVED = (SubjectIdentifier, Evidence, SubscriptionRequest, OutboxMessage, AccessLog)
_MOVED_TOO = (AccessSession, RightsRequest)


@dataclass(frozen=True)
class Merge:
    subject_id: str
    merged_id: str
    identifiers_moved: int
    changed: int  # topics whose standing the merge changed on the survivor


def merge(
    session: Session,
    rules: Rules,
    subject_id: str,
    other_id: str,
    act: ledger.Act,
    *,
    now: datetime | None = None,
) -> Merge:
    now = now or utcnow()
    head = ledger.lock(session)
    survivor = subjects.get(session, subject_id)
    other = subjects.get(session, other_id)
    if survivor.id == other.id:
        raise ConflictError(f"Subject {other_id} already is {survivor.id}.")
    ours = ledger.standings(session, survivor.id)
    theirs = ledger.standings(session, other.id)
    changes = merged_statuses(ours, theirs)
    all_marketing = changes.pop(ALL_MARKETING, None)
    drafts = [
        ledger.Draft(
            Action.MERGE,
            subject_id=survivor.id,
            topic=topic,
            status=status,
            legal_basis=legal_basis(rules.catalog, topic),
            details={"merged": other.id},
        )
        for topic, status in sorted(changes.items())
    ]
    if needs_all_marketing_again(ours, theirs, changes):
        all_marketing = Status.WITHDRAWN
    if all_marketing is not None:
        drafts.append(
            ledger.Draft(
                Action.MERGE,
                subject_id=survivor.id,
                topic=ALL_MARKETING,
                status=all_marketing,
                details={"merged": other.id},
            )
        )
    moved = session.scalar(
        select(func.count()).select_from(SubjectIdentifier).filter_by(subject_id=other.id)
    )
    for table in (*_MOVED, *_MOVED_TOO):
        session.execute(
            update(table).where(table.subject_id == other.id).values(subject_id=survivor.id)
        )
    # The other's own state rows stay: they are what its events add up to (the verifier
    # checks that), and nothing reads them once its identifiers and id answer as the survivor.
    other.merged_into = survivor.id
    if survivor.locale is None:
        survivor.locale = other.locale
    if survivor.country is None:
        survivor.country = other.country
    summary = {"merged": other.id, "into": survivor.id, "identifiers": moved or 0}
    drafts.insert(0, ledger.Draft(Action.MERGE, subject_id=survivor.id, details=summary))
    drafts.insert(1, ledger.Draft(Action.MERGE, subject_id=other.id, details=summary))
    ledger.append(session, head, act, drafts, now=now)
    session.commit()
    return Merge(survivor.id, other.id, moved or 0, len(drafts) - 2)
