"""Opting in: a request records `pending` (double opt-in) or `granted` (single opt-in) events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.domain.consent import Topic, channel_topic, legal_basis, pair_topic
from app.domain.errors import NotFoundError, UnknownTopicError
from app.domain.identifiers import Identifier
from app.domain.rules import Rules
from app.domain.vocabulary import Action, Method, Status
from app.models import SubscriptionRequest, Suppression, utcnow
from app.services.consent import derived, ledger, subjects


@dataclass(frozen=True)
class Requested:
    subject_id: str
    status: Status  # pending or granted
    request: SubscriptionRequest | None  # the double opt-in request, when one is pending
    is_new_subject: bool


def validate_categories(rules: Rules, channel: str, categories: Sequence[str]) -> None:
    if not categories:
        raise UnknownTopicError(
            "Name at least one category.", {"categories": ["Must not be empty."]}
        )
    for category in categories:
        found = rules.catalog.require_pair(channel, category)
        if found.is_transactional:
            message = f"{category!r} is transactional: it needs no opt-in."
            raise UnknownTopicError(message, {"categories": [message]})


def request(
    session: Session,
    rules: Rules,
    ident: Identifier,
    channel: str,
    categories: Sequence[str],
    act: ledger.Act,
    *,
    country: str | None = None,
    ttl: timedelta = timedelta(hours=72),
    now: datetime | None = None,
    commit: bool = True,
) -> Requested:
    """Record an opt-in request: one event per (channel, category), never one bundled event.

    Double opt-in applies by policy, and always to a suppressed (erased) identifier: only a
    fresh confirmed opt-in lifts a suppression.
    """
    validate_categories(rules, channel, categories)
    now = now or utcnow()
    head = ledger.lock(session)
    subject, is_new = subjects.find_or_create(
        session, rules, ident, now=now, locale=act.locale, country=country
    )
    derived.note_country(session, subject, act.ip, act.capture_point, now)
    key = ident.key(rules.identifier_key)
    is_suppressed = subjects.is_suppressed(session, key)
    needs_confirmation = is_suppressed or rules.needs_double_opt_in(channel, country)
    current = ledger.standings(session, subject.id)
    status = Status.PENDING if needs_confirmation else Status.GRANTED
    action = Action.REQUEST if needs_confirmation else Action.GRANT
    wanted: list[Topic] = []
    channel_standing = current.get(channel_topic(channel))
    if channel_standing is None or channel_standing.status is not Status.GRANTED:
        wanted.append(channel_topic(channel))
    wanted += [
        pair_topic(channel, c)
        for c in dict.fromkeys(categories)
        if (s := current.get(pair_topic(channel, c))) is None or s.status is not Status.GRANTED
    ]
    if is_suppressed and channel_topic(channel) not in wanted:
        wanted.insert(0, channel_topic(channel))
    drafts = [
        ledger.Draft(
            action,
            subject_id=subject.id,
            topic=topic,
            status=status,
            legal_basis=legal_basis(rules.catalog, topic),
        )
        for topic in wanted
        if current.get(topic) is None or current[topic].status is not status
    ]
    evidence_hash = ledger.record_evidence(session, subject.id, act, now)
    if drafts:
        ledger.append(session, head, act, drafts, now=now, evidence_hash=evidence_hash)
    pending = None
    if needs_confirmation and wanted:
        pending = SubscriptionRequest(
            id=str(uuid.uuid4()),
            subject_id=subject.id,
            identifier_hmac=key,
            channel=channel,
            categories=json.dumps([t.category for t in wanted if t.category]),
            locale=act.locale,
            notice_version=act.notice_version,
            source=act.source,
            created_at=now,
            expires_at=now + ttl,
            request_evidence_hash=evidence_hash,
        )
        session.add(pending)
    if commit:
        session.commit()
    overall = Status.PENDING if pending is not None else Status.GRANTED
    return Requested(subject.id, overall, pending, is_new)


def confirm(
    session: Session,
    rules: Rules,
    request_id: str,
    act: ledger.Act,
    *,
    now: datetime | None = None,
) -> SubscriptionRequest:
    """Turn a pending request into grants. Confirming twice changes nothing the second time."""
    now = now or utcnow()
    head = ledger.lock(session)
    pending = session.get(SubscriptionRequest, request_id, populate_existing=True)
    if pending is None:
        raise NotFoundError("No such subscription request.")
    if pending.confirmed_at is not None:
        session.commit()
        return pending
    subjects.get(session, pending.subject_id)
    current = ledger.standings(session, pending.subject_id)
    topics = [channel_topic(pending.channel)] + [
        pair_topic(pending.channel, c) for c in json.loads(pending.categories)
    ]
    confirm_act = ledger.Act(
        actor="subject",
        method=Method.DOUBLE_OPT_IN,
        source=pending.source,
        capture_point=act.capture_point,
        locale=pending.locale,
        notice_version=pending.notice_version,
        notice_sha256=act.notice_sha256,
        ip=act.ip,
        user_agent=act.user_agent,
        evidence={"request_id": pending.id, **dict(act.evidence)},
    )
    evidence_hash = ledger.record_evidence(session, pending.subject_id, confirm_act, now)
    drafts = [
        ledger.Draft(
            Action.CONFIRM,
            subject_id=pending.subject_id,
            topic=topic,
            status=Status.GRANTED,
            legal_basis=legal_basis(rules.catalog, topic),
            details={"request_id": pending.id},
        )
        for topic in topics
        if (s := current.get(topic)) is None or s.status is not Status.GRANTED
    ]
    suppression = session.get(Suppression, pending.identifier_hmac)
    if suppression is not None and suppression.lifted_at is None:
        suppression.lifted_at = now
        drafts.append(
            ledger.Draft(
                Action.SUPPRESSION_LIFTED,
                subject_id=pending.subject_id,
                details={"request_id": pending.id},
            )
        )
    if drafts:
        ledger.append(session, head, confirm_act, drafts, now=now, evidence_hash=evidence_hash)
    pending.confirmed_at = now
    pending.confirm_evidence_hash = evidence_hash
    session.commit()
    return pending
