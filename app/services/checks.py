"""The consent check: the hot path. One keyed lookup, one read of current state, a pure decision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.domain.consent import (
    ALL_MARKETING,
    SUPPRESSED,
    Decision,
    Standing,
    Topic,
    channel_topic,
    decide_message,
    decide_purpose,
    pair_topic,
    purpose_topic,
)
from app.domain.identifiers import Identifier, normalize_email
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.models import ConsentState, Subject, SubjectIdentifier, Suppression, utcnow
from app.services.ledger import standing_of

BATCH_LIMIT = 10_000
_CHUNK = 1000  # keeps IN lists well inside every driver's parameter limit


@dataclass(frozen=True)
class Question:
    """What is asked: a channel and category, or a purpose."""

    channel: str | None = None
    category: str | None = None
    purpose: str | None = None

    def topics(self) -> list[Topic]:
        if self.purpose:
            return [purpose_topic(self.purpose)]
        assert self.channel
        assert self.category
        return [ALL_MARKETING, channel_topic(self.channel), pair_topic(self.channel, self.category)]


@dataclass(frozen=True)
class Answer:
    decision: Decision
    subject_id: str | None


def validate(rules: Rules, question: Question) -> bool:
    """Raise UnknownTopicError for what the catalog lacks; return whether it is transactional."""
    if question.purpose:
        rules.catalog.require_purpose(question.purpose)
        return False
    assert question.channel
    assert question.category
    return rules.catalog.require_pair(question.channel, question.category).is_transactional


def check(
    session: Session,
    rules: Rules,
    question: Question,
    *,
    ident: Identifier | None = None,
    subject_id: str | None = None,
    now: datetime | None = None,
) -> Answer:
    is_transactional = validate(rules, question)
    now = now or utcnow()
    if ident is not None:
        key = ident.key(rules.identifier_key)
        subject_id, is_suppressed = session.execute(
            select(
                select(SubjectIdentifier.subject_id)
                .where(SubjectIdentifier.hmac == key)
                .scalar_subquery(),
                exists().where(Suppression.hmac == key, Suppression.lifted_at.is_(None)),
            )
        ).one()
    else:
        subject = session.get(Subject, subject_id) if subject_id else None
        if subject is None:
            subject_id, is_suppressed = None, False
        else:
            is_suppressed = subject.erased_at is not None
    if is_suppressed:
        return Answer(SUPPRESSED, subject_id)
    standings = _standings(session, [subject_id], question).get(subject_id or "", {})
    return Answer(
        _decide(rules, question, is_transactional, subject_id, standings, now), subject_id
    )


@dataclass(frozen=True)
class BatchResult:
    email: str
    decision: Decision


def check_emails(
    session: Session,
    rules: Rules,
    question: Question,
    emails: Sequence[str],
    *,
    now: datetime | None = None,
) -> list[BatchResult]:
    """Decide for many emails with set-based queries; results in input order."""
    is_transactional = validate(rules, question)
    now = now or utcnow()
    keys = [
        Identifier(IdentifierKind.EMAIL, normalize_email(e)).key(rules.identifier_key)
        for e in emails
    ]
    unique = list(dict.fromkeys(keys))
    subject_by_key: dict[str, str] = {}
    suppressed: set[str] = set()
    for chunk in _chunks(unique):
        subject_by_key.update(
            session.execute(
                select(SubjectIdentifier.hmac, SubjectIdentifier.subject_id).where(
                    SubjectIdentifier.hmac.in_(chunk)
                )
            ).all()
        )
        suppressed.update(
            session.scalars(
                select(Suppression.hmac).where(
                    Suppression.hmac.in_(chunk), Suppression.lifted_at.is_(None)
                )
            )
        )
    standings = _standings(session, list(set(subject_by_key.values())), question)
    results = []
    for email, key in zip(emails, keys, strict=True):
        if key in suppressed:
            decision = SUPPRESSED
        else:
            subject_id = subject_by_key.get(key)
            decision = _decide(
                rules,
                question,
                is_transactional,
                subject_id,
                standings.get(subject_id or "", {}),
                now,
            )
        results.append(BatchResult(email, decision))
    return results


def _standings(
    session: Session, subject_ids: Sequence[str | None], question: Question
) -> dict[str, dict[Topic, Standing]]:
    topics = question.topics()
    channels = {t.channel for t in topics}
    categories = {t.category for t in topics}
    purposes = {t.purpose for t in topics}
    found: dict[str, dict[Topic, Standing]] = {}
    ids = [s for s in subject_ids if s]
    for chunk in _chunks(ids):
        rows = session.scalars(
            select(ConsentState).where(
                ConsentState.subject_id.in_(chunk),
                ConsentState.channel.in_(channels),
                ConsentState.category.in_(categories),
                ConsentState.purpose.in_(purposes),
            )
        )
        for row in rows:
            found.setdefault(row.subject_id, {})[Topic(row.channel, row.category, row.purpose)] = (
                standing_of(row)
            )
    return found


def _decide(
    rules: Rules,
    question: Question,
    is_transactional: bool,
    subject_id: str | None,
    standings: dict[Topic, Standing],
    now: datetime,
) -> Decision:
    if question.purpose:
        return decide_purpose(
            is_suppressed=False,
            is_known=subject_id is not None,
            purpose=standings.get(purpose_topic(question.purpose)),
            now=now,
            max_age=rules.max_consent_age,
        )
    assert question.channel
    assert question.category
    return decide_message(
        is_transactional=is_transactional,
        is_suppressed=False,
        is_known=subject_id is not None,
        all_marketing=standings.get(ALL_MARKETING),
        channel=standings.get(channel_topic(question.channel)),
        pair=standings.get(pair_topic(question.channel, question.category)),
        now=now,
        max_age=rules.max_consent_age,
    )


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
