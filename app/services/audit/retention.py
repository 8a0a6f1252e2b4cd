"""Retention: what is kept only as long as it is needed, removed by a run that logs itself.

Periods (Settings): unconfirmed double opt-in requests go after `pending_retention` with their
session evidence and the address known only from them, and the topics they left pending are
closed with a `withdraw` event (reason `confirmation_expired`); the page-access log goes after
`access_log_retention`; mail undelivered after `mail_retention` is given up and cleared, and
the development outbox's .eml files go after it too; the webhook delivery log forgets a
delivered change after `webhook_log_retention` (the changes feed keeps it); session evidence no
event or request
names any more, or older than `evidence_retention` for a subject with nothing granted, goes;
and proof goes `proof_retention` after processing ended. Events can only leave from the front
of the chain, so the chain's base moves forward to the last removed event, and the run records
that base in
its own event (and signs it in a checkpoint), which the verifiers check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from joserfc.jwk import ECKey
from sqlalchemy import CursorResult, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from app.domain.consent import channel_topic, pair_topic
from app.domain.vocabulary import Action, Method, Status
from app.models import (
    AccessLog,
    ChainHead,
    ConsentEvent,
    ConsentState,
    Evidence,
    OutboxMessage,
    SubjectIdentifier,
    SubscriptionRequest,
    WebhookDelivery,
    utcnow,
)
from app.services.audit import checkpoints
from app.services.consent import ledger
from app.services.delivery import mail, webhooks

RETENTION_ACT = ledger.Act(actor="system:retention", method=Method.SYSTEM)
EVENTS = ConsentEvent.__table__
PAGE = 1000


@dataclass(frozen=True)
class Periods:
    pending: timedelta
    evidence: timedelta
    proof: timedelta
    # The privacy page promises "30 days, then deleted" for the page-access log.
    access_log: timedelta = timedelta(days=30)
    # Mail not delivered after this is given up (address and text cleared); the development
    # outbox's .eml files (no SMTP_HOST), which hold address and text, go after it too.
    mail: timedelta = timedelta(days=7)
    # The webhook delivery log forgets a delivered change after this (the feed keeps it).
    webhook_log: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class RunReport:
    requests_removed: int
    pending_closed: int
    evidence_removed: int
    events_removed: int
    base_seq: int
    base_hash: str
    event_seq: int
    identifiers_removed: int = 0
    access_log_removed: int = 0
    mail_given_up: int = 0
    mail_files_removed: int = 0
    webhook_log_removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run(
    session: Session,
    periods: Periods,
    *,
    key: ECKey | None = None,
    now: datetime | None = None,
    mail_files: Path | None = None,
) -> RunReport:
    """One retention run, one transaction, logged as a `retention_run` event. `mail_files` is
    the development outbox folder (.eml files), when mail goes there."""
    now = now or utcnow()
    head = ledger.lock(session)
    requests_removed, pending_closed, request_evidence, identifiers_removed = _expire_requests(
        session, head, now - periods.pending, now
    )
    access_log_removed = _deleted(
        session, delete(AccessLog).where(AccessLog.occurred_at < now - periods.access_log)
    )
    mail_given_up = _give_up_mail(session, now - periods.mail)
    mail_files_removed = (
        mail.remove_files(mail_files, before=now - periods.mail) if mail_files else 0
    )
    webhook_log_removed = _deleted(
        session,
        delete(WebhookDelivery).where(
            WebhookDelivery.status == webhooks.DELIVERED,
            WebhookDelivery.delivered_at < now - periods.webhook_log,
        ),
    )
    events_removed = _remove_old_proof(session, head, now - periods.proof)
    evidence_removed = request_evidence + _remove_evidence(
        session, orphaned_before=now - periods.pending, expired_before=now - periods.evidence
    )
    counts = {
        "requests_removed": requests_removed,
        "pending_closed": pending_closed,
        "evidence_removed": evidence_removed,
        "events_removed": events_removed,
        "identifiers_removed": identifiers_removed,
        "access_log_removed": access_log_removed,
        "mail_given_up": mail_given_up,
        "mail_files_removed": mail_files_removed,
        "webhook_log_removed": webhook_log_removed,
        "base_seq": head.base_seq,
        "base_hash": head.base_hash,
        "periods_days": {
            "pending": periods.pending.days,
            "evidence": periods.evidence.days,
            "proof": periods.proof.days,
            "access_log": periods.access_log.days,
            "mail": periods.mail.days,
            "webhook_log": periods.webhook_log.days,
        },
    }
    (event,) = ledger.append(
        session, head, RETENTION_ACT, [ledger.Draft(Action.RETENTION_RUN, details=counts)], now=now
    )
    if key is not None:
        checkpoints.append_in(session, head, key, now)
    session.commit()
    return RunReport(
        requests_removed,
        pending_closed,
        evidence_removed,
        events_removed,
        head.base_seq,
        head.base_hash,
        event["seq"],
        identifiers_removed,
        access_log_removed,
        mail_given_up,
        mail_files_removed,
        webhook_log_removed,
    )


def _expire_requests(
    session: Session, head: ChainHead, cutoff: datetime, now: datetime
) -> tuple[int, int, int, int]:
    """Unconfirmed requests past the cutoff; the topics they left pending are closed, and an
    address known only from them (never confirmed, nothing granted) goes with them."""
    expired = session.scalars(
        select(SubscriptionRequest).where(
            SubscriptionRequest.confirmed_at.is_(None), SubscriptionRequest.created_at < cutoff
        )
    ).all()
    closed = 0
    evidence = 0
    expired_ids = {r.id for r in expired}
    for row in expired:
        other_open = session.scalar(
            select(
                exists().where(
                    SubscriptionRequest.subject_id == row.subject_id,
                    SubscriptionRequest.channel == row.channel,
                    SubscriptionRequest.confirmed_at.is_(None),
                    SubscriptionRequest.id.not_in(expired_ids),
                )
            )
        )
        if not other_open:
            topics = [channel_topic(row.channel)] + [
                pair_topic(row.channel, c) for c in json.loads(row.categories)
            ]
            standing = ledger.standings(session, row.subject_id, topics)
            drafts = [
                ledger.Draft(
                    Action.WITHDRAW,
                    subject_id=row.subject_id,
                    topic=topic,
                    status=Status.WITHDRAWN,
                    details={"reason": "confirmation_expired", "request_id": row.id},
                )
                for topic in topics
                if (s := standing.get(topic)) is not None and s.status is Status.PENDING
            ]
            if drafts:
                ledger.append(session, head, RETENTION_ACT, drafts, now=now)
                closed += len(drafts)
        if row.request_evidence_hash:
            evidence += _deleted(
                session, delete(Evidence).where(Evidence.hash == row.request_evidence_hash)
            )
        session.delete(row)
    session.flush()
    identifiers = 0
    for row in expired:
        identifiers += _remove_unconfirmed_identifier(session, row)
    return len(expired), closed, evidence, identifiers


def _remove_unconfirmed_identifier(session: Session, expired: SubscriptionRequest) -> int:
    """The address of an expired request, unless it was confirmed some other time, another
    request for it is open, or its subject holds a grant (a customer known by it)."""
    # The expired requests are gone by now: any other request for the address is confirmed
    # or still open.
    still_needed = session.scalar(
        select(
            exists().where(SubscriptionRequest.identifier_hmac == expired.identifier_hmac)
            | exists().where(
                ConsentState.subject_id == expired.subject_id,
                ConsentState.status == str(Status.GRANTED),
            )
        )
    )
    if still_needed:
        return 0
    return _deleted(
        session,
        delete(SubjectIdentifier).where(
            SubjectIdentifier.hmac == expired.identifier_hmac,
            SubjectIdentifier.subject_id == expired.subject_id,
        ),
    )


def _give_up_mail(session: Session, cutoff: datetime) -> int:
    """Mail still undelivered after the period is failed, its address and text cleared."""
    return _deleted(
        session,
        update(OutboxMessage)
        .where(OutboxMessage.status.in_(("queued", "sending")), OutboxMessage.created_at < cutoff)
        .values(
            status="failed",
            last_error="given up by retention",
            to_address=None,
            body_text=None,
            body_html=None,
        )
        .execution_options(synchronize_session=False),
    )


def _remove_old_proof(session: Session, head: ChainHead, cutoff: datetime) -> int:
    """Remove the longest run of events from the base whose processing ended before cutoff.

    A subject's processing has ended when nothing of theirs is granted or pending (erased or
    fully withdrawn) and their last event is older than the cutoff; an event with no subject
    (checkpoints, notices, earlier runs) goes once it is older than the cutoff. The first
    event that must stay ends the run: the chain can only lose its front.
    """
    verdicts: dict[str, bool] = {}
    last: tuple[int, str] | None = None
    for seq, event_hash, subject_id, occurred_at in _from_base(session, head):
        if occurred_at >= cutoff:
            break
        if subject_id is not None:
            if subject_id not in verdicts:
                verdicts[subject_id] = _has_ended(session, subject_id, cutoff)
            if not verdicts[subject_id]:
                break
        last = (seq, event_hash)
    if last is None:
        return 0
    new_base_seq, new_base_hash = last
    removed_evidence = select(EVENTS.c.evidence_hash).where(
        EVENTS.c.chain_id == head.chain_id,
        EVENTS.c.seq <= new_base_seq,
        EVENTS.c.evidence_hash.is_not(None),
    )
    session.execute(delete(Evidence).where(Evidence.hash.in_(removed_evidence)))
    removed = _deleted(
        session,
        delete(ConsentEvent).where(
            ConsentEvent.chain_id == head.chain_id,
            ConsentEvent.seq > head.base_seq,
            ConsentEvent.seq <= new_base_seq,
        ),
    )
    head.base_seq, head.base_hash = new_base_seq, new_base_hash
    session.flush()
    return removed


def _from_base(session: Session, head: ChainHead) -> Iterator[Any]:
    after = head.base_seq
    while True:
        rows = session.execute(
            select(EVENTS.c.seq, EVENTS.c.hash, EVENTS.c.subject_id, EVENTS.c.occurred_at)
            .where(EVENTS.c.chain_id == head.chain_id, EVENTS.c.seq > after)
            .order_by(EVENTS.c.seq)
            .limit(PAGE)
        ).all()
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


def _has_ended(session: Session, subject_id: str, cutoff: datetime) -> bool:
    active = session.scalar(
        select(
            exists().where(
                ConsentState.subject_id == subject_id,
                ConsentState.status.in_([str(Status.GRANTED), str(Status.PENDING)]),
            )
        )
    )
    if active:
        return False
    latest = session.scalar(
        select(func.max(ConsentEvent.occurred_at)).where(ConsentEvent.subject_id == subject_id)
    )
    return latest is None or latest < cutoff


def _remove_evidence(
    session: Session, *, orphaned_before: datetime, expired_before: datetime
) -> int:
    """Session evidence nothing has named for a while, or past its period for a subject with
    nothing granted or pending."""
    named_by_event = exists().where(ConsentEvent.evidence_hash == Evidence.hash)
    named_by_request = exists().where(
        or_(
            SubscriptionRequest.request_evidence_hash == Evidence.hash,
            SubscriptionRequest.confirm_evidence_hash == Evidence.hash,
        )
    )
    active = exists().where(
        ConsentState.subject_id == Evidence.subject_id,
        ConsentState.status.in_([str(Status.GRANTED), str(Status.PENDING)]),
    )
    orphaned = (Evidence.created_at < orphaned_before) & ~named_by_event & ~named_by_request
    expired = (Evidence.created_at < expired_before) & ~active
    return _deleted(
        session,
        delete(Evidence).where(or_(orphaned, expired)).execution_options(synchronize_session=False),
    )


def _deleted(session: Session, statement: Any) -> int:
    result = session.execute(statement)
    return int(cast(CursorResult[Any], result).rowcount)
