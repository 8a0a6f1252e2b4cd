"""`suppression.is_suppressed` as it was before its one statement (issue 18): four ORM reads,
the subject's identifiers keyed in Python. Tests check the new read against it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.identifiers import Identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.models import Subject, SubjectIdentifier, Suppression
from app.services.consent.suppression import keys_of

_KINDS = frozenset(IdentifierKind)


def old_is_suppressed(
    session: Session,
    rules: Rules,
    *,
    ident: Identifier | None = None,
    subject_id: str | None = None,
) -> bool:
    keys = keys_of(rules, ident) if ident is not None else ()
    if _suppressed_keys(session, keys):
        return True
    if subject_id is None:
        return False
    erased = select(Subject.id).where(Subject.id == subject_id, Subject.erased_at.is_not(None))
    if session.scalar(erased) is not None:
        return True
    rows = session.scalars(
        select(SubjectIdentifier).where(SubjectIdentifier.subject_id == subject_id)
    )
    stored = [key for row in rows for key in _stored_keys(rules, row)]
    return bool(_suppressed_keys(session, stored))


def _suppressed_keys(session: Session, keys: tuple[str, ...] | list[str]) -> set[str]:
    if not keys:
        return set()
    found = select(Suppression.hmac).where(
        Suppression.hmac.in_(list(keys)), Suppression.lifted_at.is_(None)
    )
    return set(session.scalars(found))


def _stored_keys(rules: Rules, row: SubjectIdentifier) -> tuple[str, ...]:
    if row.kind in _KINDS:
        return (row.hmac, *keys_of(rules, Identifier(IdentifierKind(row.kind), row.value)))
    return (row.hmac,)
