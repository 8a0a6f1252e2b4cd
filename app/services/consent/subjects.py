"""Subjects: finding them by identifier, what is held on them, and erasing them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, String, Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from app.database import PreparedSelect
from app.domain.consent import Standing, Topic
from app.domain.errors import NotFoundError, SubjectErasedError
from app.domain.identifiers import Identifier, identifier, identifier_hmac
from app.domain.rules import Rules
from app.domain.vocabulary import Action, IdentifierKind, Status
from app.models import (
    AccessLog,
    AccessSession,
    ChainHead,
    ConsentEvent,
    ConsentState,
    DerivedDatum,
    Evidence,
    NoticeVersion,
    OutboxMessage,
    RightsRequest,
    Subject,
    SubjectIdentifier,
    SubscriptionRequest,
    Suppression,
    new_id,
    utcnow,
)
from app.services.audit import trail
from app.services.consent import derived, ledger, notices, suppression
from app.services.delivery import mail
from app.services.privacy_center import rights


def get(session: Session, subject_id: str, *, allow_erased: bool = False) -> Subject:
    """The subject, or the one it was merged into: a merged-away id answers as the survivor."""
    subject = session.get(Subject, subject_id)
    if subject is None:
        raise NotFoundError(f"No subject {subject_id}.")
    for _ in range(MAX_MERGE_DEPTH):
        if subject.merged_into is None:
            break
        survivor = session.get(Subject, subject.merged_into)
        if survivor is None:
            break
        subject = survivor
    if subject.erased_at is not None and not allow_erased:
        raise SubjectErasedError(f"Subject {subject_id} was erased.")
    return subject


MAX_MERGE_DEPTH = 32


def merged_ids(session: Session, subject_id: str) -> list[str]:
    """The subject and every subject merged into it, directly or through another merge."""
    found, frontier = [subject_id], [subject_id]
    while frontier and len(found) < 10_000:
        frontier = list(
            session.scalars(select(Subject.id).where(Subject.merged_into.in_(frontier)))
        )
        found += frontier
    return found


@dataclass(frozen=True, slots=True)
class Held:
    """What a write use case needs of the subject it changes (`preferences.awaiting_confirmation`
    asks its country)."""

    id: str
    country: str | None


_STATE = cast(Table, ConsentState.__table__).c
_STANDINGS = PreparedSelect(
    select(
        Subject.id,
        Subject.country,
        Subject.merged_into,
        Subject.erased_at,
        _STATE.channel,
        _STATE.category,
        _STATE.purpose,
        _STATE.status,
        _STATE.event_seq,
        _STATE.occurred_at,
        _STATE.event_id,
    )
    .outerjoin(ConsentState, _STATE.subject_id == Subject.id)
    .where(Subject.id == bindparam("subject_id", type_=String))
)


def locked_standings(
    session: Session, subject_id: str
) -> tuple[ChainHead, Held, dict[Topic, Standing]]:
    """Take the chain lock and read `standings` under it, in one round trip on PostgreSQL
    (`ledger.lock_and_read`)."""
    head, rows = ledger.lock_and_read(session, _STANDINGS, {"subject_id": subject_id})
    return (head, *_standings_of(session, subject_id, rows))


def standings(session: Session, subject_id: str) -> tuple[Held, dict[Topic, Standing]]:
    """`get` (merges followed) and the subject's current standings, for a write use case that
    reads both while it holds the chain lock: one prepared statement, no ORM object, unless
    the id was merged away."""
    return _standings_of(session, subject_id, _STANDINGS.rows(session, {"subject_id": subject_id}))


def _standings_of(
    session: Session, subject_id: str, rows: list[Any]
) -> tuple[Held, dict[Topic, Standing]]:
    if not rows or rows[0].merged_into is not None:
        subject = get(session, subject_id)  # not found, or the survivor of a merge
        return Held(subject.id, subject.country), ledger.standings(session, subject.id)
    first = rows[0]
    if first.erased_at is not None:
        raise SubjectErasedError(f"Subject {subject_id} was erased.")
    return Held(first.id, first.country), {
        Topic(row.channel, row.category, row.purpose): Standing(
            Status(row.status), row.event_seq, row.occurred_at, row.event_id
        )
        for row in rows
        if row.status is not None
    }


def find(
    session: Session, rules: Rules, kind: IdentifierKind, raw: str, *, region: str | None = None
) -> Subject:
    keys = identifier(kind, raw, region=region).keys(rules.identifier_keys)
    subject_id = session.scalar(
        select(SubjectIdentifier.subject_id).where(SubjectIdentifier.hmac.in_(keys)).limit(1)
    )
    if subject_id is None:
        raise NotFoundError(f"No subject with that {kind}.")
    return get(session, subject_id)


def carry_suppression(session: Session, keys: Sequence[str]) -> None:
    """Move a suppression made under an old key to the current one (`keys[0]`): only now, with
    the plain identifier at hand, can it be re-keyed. Runs inside the caller's transaction."""
    current, *old = keys
    if not old or session.get(Suppression, current) is not None:
        return
    for row in session.scalars(select(Suppression).where(Suppression.hmac.in_(old))):
        session.add(
            Suppression(
                hmac=current, kind=row.kind, created_at=row.created_at, lifted_at=row.lifted_at
            )
        )
        session.delete(row)
        return


@dataclass(frozen=True)
class Rekeyed:
    identifiers: int
    requests: int
    suppressions_kept: int  # as they are: the ring matches them under every key


def rekey(session: Session, rules: Rules, *, batch: int = 1000) -> Rekeyed:
    """Re-key every identifier (its plain value is kept) to the current key, and the requests
    that name it. Suppressions hold no plain value: they keep their old HMAC, which the ring
    still matches, and move one by one when the person shows up again (`carry_suppression`)."""
    moved = requests = 0
    after = ""
    while True:
        rows = session.execute(
            select(SubjectIdentifier.hmac, SubjectIdentifier.kind, SubjectIdentifier.value)
            .where(SubjectIdentifier.hmac > after)
            .order_by(SubjectIdentifier.hmac)
            .limit(batch)
        ).all()
        if not rows:
            break
        after = rows[-1].hmac
        for old, kind, value in rows:
            new = identifier_hmac(rules.identifier_key, kind, value)
            if new == old:
                continue
            session.execute(
                update(SubjectIdentifier).where(SubjectIdentifier.hmac == old).values(hmac=new)
            )
            result = session.execute(
                update(SubscriptionRequest)
                .where(SubscriptionRequest.identifier_hmac == old)
                .values(identifier_hmac=new)
            )
            moved += 1
            requests += cast(CursorResult[Any], result).rowcount
    kept = session.scalar(select(func.count()).select_from(Suppression))
    session.commit()
    return Rekeyed(moved, requests, int(kept or 0))


def find_or_create(
    session: Session,
    rules: Rules,
    ident: Identifier,
    *,
    now: datetime,
    locale: str | None = None,
    country: str | None = None,
) -> tuple[Subject, bool]:
    """The subject holding this identifier, or a new one. Runs inside the caller's transaction."""
    keys = ident.keys(rules.identifier_keys)
    key = keys[0]
    row = next(filter(None, (session.get(SubjectIdentifier, k) for k in keys)), None)
    if row is not None:
        subject = get(session, row.subject_id)
        if locale and not subject.locale:
            subject.locale = locale
        if country and not subject.country:
            subject.country = country
        return subject, False
    subject = Subject(id=new_id(), created_at=now, locale=locale, country=country)
    session.add(subject)
    session.flush()
    session.add(
        SubjectIdentifier(
            hmac=key,
            id=new_id(),
            subject_id=subject.id,
            kind=str(ident.kind),
            value=ident.value,
            created_at=now,
        )
    )
    suppression.store_variants(session, rules, [(key, str(ident.kind), ident.value)])
    return subject, True


@dataclass(frozen=True)
class Erasure:
    subject_id: str
    erased_at: datetime
    identifiers_suppressed: int
    event_id: str


def erase(
    session: Session,
    rules: Rules,
    subject_id: str,
    act: ledger.Act,
    *,
    now: datetime | None = None,
    mail_files: Path | None = None,
) -> Erasure:
    """Erase a subject on request through the API; one transaction."""
    erasure = apply_erasure(
        session, rules, subject_id, act, now=now, channel="api", mail_files=mail_files
    )
    session.commit()
    return erasure


def apply_erasure(
    session: Session,
    rules: Rules,
    subject_id: str,
    act: ledger.Act,
    *,
    channel: str,
    now: datetime | None = None,
    mail_files: Path | None = None,
) -> Erasure:
    """Delete identifiers and personal evidence; keep HMAC suppressions and pseudonymous proof.

    Writes in the caller's transaction and logs the erasure as a rights request that came in
    through `channel`; the caller commits (with the final mail of a self-service erasure).
    `mail_files` is the development outbox folder, whose .eml files sent to the person go too.
    """
    now = now or utcnow()
    head = ledger.lock(session)
    subject = get(session, subject_id)
    subject_id = subject.id
    everyone = merged_ids(session, subject_id)
    identifiers = list(
        session.scalars(select(SubjectIdentifier).where(SubjectIdentifier.subject_id.in_(everyone)))
    )
    suppression.suppress(session, rules, identifiers, now=now)
    if mail_files is not None:
        mail.forget_files(
            mail_files, [r.value for r in identifiers if r.kind == IdentifierKind.EMAIL]
        )
    for row in identifiers:
        session.delete(row)
    for table in (
        Evidence,
        AccessLog,
        AccessSession,
        OutboxMessage,
        SubscriptionRequest,
        DerivedDatum,
    ):
        session.execute(delete(table).where(table.subject_id.in_(everyone)))
    session.execute(delete(ConsentState).where(ConsentState.subject_id == subject_id))
    for person in session.scalars(select(Subject).where(Subject.id.in_(everyone))):
        person.locale = person.country = None
        person.erased_at = now
    # The erasure act's own evidence would be personal data about an erased person: none kept.
    bare = ledger.Act(actor=act.actor, method=act.method, source=act.source)
    (event,) = ledger.append(
        session,
        head,
        bare,
        [
            ledger.Draft(
                Action.ERASE, subject_id=subject_id, details={"identifiers": len(identifiers)}
            )
        ],
        now=now,
    )
    rights.add(session, subject_id, "erasure", received_at=now, answered_at=now, channel=channel)
    return Erasure(subject_id, now, len(identifiers), event["id"])


def export(
    session: Session, rules: Rules, subject_id: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """Everything held on a subject (GDPR Art. 15 and 20), as plain data."""
    now = now or utcnow()
    subject = get(session, subject_id)
    subject_id = subject.id
    everyone = merged_ids(session, subject_id)
    identifiers = session.scalars(
        select(SubjectIdentifier)
        .where(SubjectIdentifier.subject_id == subject_id)
        .order_by(SubjectIdentifier.created_at, SubjectIdentifier.id)
    ).all()
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.subject_id.in_(everyone)).order_by(ConsentEvent.seq)
    ).all()
    evidence: dict[str | None, Evidence] = {
        row.hash: row
        for row in session.scalars(select(Evidence).where(Evidence.subject_id.in_(everyone)))
    }
    versions = sorted({e.notice_version for e in events if e.notice_version})
    cited = (
        session.scalars(
            select(NoticeVersion)
            .where(NoticeVersion.version.in_(versions))
            .order_by(NoticeVersion.key, NoticeVersion.version, NoticeVersion.locale)
        ).all()
        if versions
        else []
    )
    view = ledger.current_view(session, rules, subject_id, now=now)
    # Answered as it is asked: logged so the rights-request log is complete.
    rights.add(session, subject_id, "access", received_at=now, answered_at=now, channel="api")
    session.flush()
    requests = session.scalars(
        select(RightsRequest)
        .where(RightsRequest.subject_id == subject_id)
        .order_by(RightsRequest.received_at)
    ).all()
    exported = {
        "subject_id": subject.id,
        "created_at": subject.created_at,
        "locale": subject.locale,
        "country": subject.country,
        "identifiers": [identifier_data(i) for i in identifiers],
        "preferences": view,
        "events": [
            trail.event_dict(event.record())
            | {"evidence": evidence_data(evidence.get(event.evidence_hash))}
            for event in events
        ],
        "notices": [notices.record(n) for n in cited],
        "rights_requests": [rights_request_data(r) for r in requests],
        "derived": [derived.data(row) for row in derived.of_subject(session, subject_id)],
    }
    session.commit()
    return exported


def evidence_data(row: Evidence | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "ip": row.ip,
        "user_agent": row.user_agent,
        "country": row.country,
        "details": json.loads(row.details) if row.details else None,
        "captured_at": row.created_at,
    }


def identifier_data(row: SubjectIdentifier) -> dict[str, Any]:
    """One identifier as the API, the export and the person's download show it."""
    return {
        "id": row.id,
        "kind": row.kind,
        "value": row.value,
        "confirmed_at": row.confirmed_at,
        "added_at": row.created_at,
        "source": row.source,
    }


def rights_request_data(row: RightsRequest) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "received_at": row.received_at,
        "due_at": row.due_at,
        "answered_at": row.answered_at,
    }
