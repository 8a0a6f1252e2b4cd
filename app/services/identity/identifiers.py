"""The identifiers a subject holds: finding the one subject for several, linking, unlinking."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import ConflictError, NotFoundError
from app.domain.identifiers import Identifier
from app.domain.identity import Held, parse
from app.domain.rules import Rules
from app.domain.vocabulary import Action
from app.models import ChainHead, Subject, SubjectIdentifier, new_id, utcnow
from app.services.consent import ledger, subjects, suppression


def held_by(session: Session, subject_id: str) -> list[SubjectIdentifier]:
    return list(
        session.scalars(
            select(SubjectIdentifier)
            .where(SubjectIdentifier.subject_id == subject_id)
            .order_by(SubjectIdentifier.created_at, SubjectIdentifier.id)
        )
    )


def as_held(row: SubjectIdentifier) -> Held:
    return Held(row.kind, row.value, row.confirmed_at, row.created_at)


def listing(session: Session, subject_id: str) -> list[SubjectIdentifier]:
    """The identifiers of a subject (a merged-away id answers with the survivor's)."""
    subject = subjects.get(session, subject_id)
    found = held_by(session, subject.id)
    session.commit()
    return found


def holders(session: Session, rules: Rules, idents: Sequence[Identifier]) -> dict[str, str]:
    """HMAC -> subject id, for those of `idents` that some subject holds."""
    keys = [i.key(rules.identifier_key) for i in idents]
    rows = session.execute(
        select(SubjectIdentifier.hmac, SubjectIdentifier.subject_id).where(
            SubjectIdentifier.hmac.in_(keys)
        )
    )
    return dict(rows.all())


def conflict(subject_ids: Sequence[str]) -> ConflictError:
    first, second = sorted(subject_ids)[:2]
    message = f"These identifiers belong to two different subjects: {first} and {second}."
    return ConflictError(message, {"subject_ids": [first, second]})


def resolve(
    session: Session,
    rules: Rules,
    idents: Sequence[Identifier],
    *,
    now: datetime,
    source: str | None = None,
    locale: str | None = None,
    country: str | None = None,
) -> tuple[Subject, bool]:
    """The one subject holding any of `idents` (created if none), now holding all of them.

    Runs inside the caller's locked transaction; two subjects holding them is a ConflictError.
    """
    found = holders(session, rules, idents)
    owners = sorted(set(found.values()))
    if len(owners) > 1:
        raise conflict(owners)
    if owners:
        subject = subjects.get(session, owners[0])
        if locale and not subject.locale:
            subject.locale = locale
        if country and not subject.country:
            subject.country = country
        is_new = False
    else:
        subject = Subject(id=new_id(), created_at=now, locale=locale, country=country)
        session.add(subject)
        session.flush()
        is_new = True
    for ident in idents:
        key = ident.key(rules.identifier_key)
        if key not in found:
            session.add(
                SubjectIdentifier(**new_row(subject.id, ident, key, now=now, source=source))
            )
            suppression.store_variants(session, rules, [(key, str(ident.kind), ident.value)])
            found[key] = subject.id
    return subject, is_new


def new_row(
    subject_id: str,
    ident: Identifier,
    key: str,
    *,
    now: datetime,
    source: str | None,
) -> dict[str, Any]:
    """A new subject_identifiers row as plain data (a use case makes it an ORM row; an import
    writes a chunk's rows at once)."""
    return {
        "hmac": key,
        "id": new_id(),
        "subject_id": subject_id,
        "kind": str(ident.kind),
        "value": ident.value,
        "created_at": now,
        "source": source,
        "confirmed_at": None,
    }


def link(
    session: Session,
    rules: Rules,
    subject_id: str,
    kind: str,
    raw: str,
    act: ledger.Act,
    *,
    region: str | None = None,
    now: datetime | None = None,
) -> tuple[SubjectIdentifier, bool]:
    """Add an identifier to a subject; (row, False) if it already held it. 409 if another does."""
    ident = parse(kind, raw, extra_kinds=rules.catalog.identifier_kinds, region=region)
    now = now or utcnow()
    head = ledger.lock(session)
    subject = subjects.get(session, subject_id)
    key = ident.key(rules.identifier_key)
    existing = session.get(SubjectIdentifier, key)
    if existing is not None and existing.subject_id != subject.id:
        raise conflict([existing.subject_id, subject.id])
    row = existing
    if row is None:
        row = attach(session, rules, head, subject.id, ident, key, act, now=now)
    session.commit()
    return row, existing is None


def attach(
    session: Session,
    rules: Rules,
    head: ChainHead,
    subject_id: str,
    ident: Identifier,
    key: str,
    act: ledger.Act,
    *,
    now: datetime,
) -> SubjectIdentifier:
    """Add an identifier no one holds and log the link event, in the caller's locked
    transaction (`head` from `ledger.lock`)."""
    row = SubjectIdentifier(**new_row(subject_id, ident, key, now=now, source=act.source))
    session.add(row)
    suppression.store_variants(session, rules, [(key, str(ident.kind), ident.value)])
    details = {"identifier_id": row.id, "kind": str(ident.kind)}
    drafts = [ledger.Draft(Action.LINK, subject_id=subject_id, details=details)]
    ledger.append(session, head, act, drafts, now=now)
    return row


def unlink(
    session: Session,
    subject_id: str,
    identifier_id: str,
    act: ledger.Act,
    *,
    now: datetime | None = None,
) -> None:
    """Remove one identifier from a subject (its value goes; the event keeps only its id)."""
    remove(session, subject_id, identifier_id, act, now=now or utcnow())
    session.commit()


def remove(
    session: Session, subject_id: str, identifier_id: str, act: ledger.Act, *, now: datetime
) -> None:
    """`unlink` in the caller's transaction."""
    head = ledger.lock(session)
    subject = subjects.get(session, subject_id)
    row = session.scalar(
        select(SubjectIdentifier).where(
            SubjectIdentifier.id == identifier_id, SubjectIdentifier.subject_id == subject.id
        )
    )
    if row is None:
        raise NotFoundError(f"Subject {subject.id} holds no identifier {identifier_id}.")
    details = {"identifier_id": row.id, "kind": row.kind}
    session.delete(row)
    ledger.append(
        session,
        head,
        act,
        [ledger.Draft(Action.UNLINK, subject_id=subject.id, details=details)],
        now=now,
    )
