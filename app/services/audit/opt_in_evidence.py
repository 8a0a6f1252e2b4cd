"""Double opt-in evidence for one subject: request, confirmation mail, and confirmation."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import NotFoundError
from app.models import (
    ConsentEvent,
    Evidence,
    NoticeVersion,
    OutboxMessage,
    SubscriptionRequest,
)
from app.services.consent import notices, subjects


def record(session: Session, subject_id: str) -> dict[str, Any]:
    """Every double opt-in request of the subject, each with the proof of its three steps."""
    subjects.get(session, subject_id, allow_erased=True)
    requests = session.scalars(
        select(SubscriptionRequest)
        .where(SubscriptionRequest.subject_id == subject_id)
        .order_by(SubscriptionRequest.created_at)
    ).all()
    if not requests:
        raise NotFoundError(f"Subject {subject_id} has no double opt-in request on record.")
    return {"subject_id": subject_id, "requests": [_request(session, r) for r in requests]}


def _request(session: Session, row: SubscriptionRequest) -> dict[str, Any]:
    asked = _evidence(session, row.request_evidence_hash)
    first = _first_event(session, row.request_evidence_hash)
    notice = _notice(session, row.notice_version, row.locale, first)
    mail = (
        session.scalar(select(OutboxMessage).where(OutboxMessage.message_id == row.message_id))
        if row.message_id
        else None
    )
    confirmed = _evidence(session, row.confirm_evidence_hash)
    return {
        "request_id": row.id,
        "channel": row.channel,
        "categories": json.loads(row.categories),
        "request": {
            "requested_at": row.created_at,
            "ip": asked.ip if asked else None,
            "user_agent": asked.user_agent if asked else None,
            "source": row.source,
            "capture_point": first.capture_point if first else None,
            "event_seqs": _seqs(session, row.request_evidence_hash),
            "notice": notice,
        },
        "mail": {
            "message_id": row.message_id,
            "template": mail.template if mail else None,
            "template_version": mail.template_version if mail else None,
            "template_sha256": mail.template_sha256 if mail else None,
            "status": mail.status if mail else None,
            "sent_at": mail.sent_at if mail else row.mailed_at,
        },
        "confirmation": (
            {
                "confirmed_at": row.confirmed_at,
                "ip": confirmed.ip if confirmed else None,
                "user_agent": confirmed.user_agent if confirmed else None,
                "event_seqs": _seqs(session, row.confirm_evidence_hash),
            }
            if row.confirmed_at
            else None
        ),
    }


def _evidence(session: Session, digest: str | None) -> Evidence | None:
    return session.get(Evidence, digest) if digest else None


def _first_event(session: Session, digest: str | None) -> ConsentEvent | None:
    if not digest:
        return None
    return session.scalar(
        select(ConsentEvent).where(ConsentEvent.evidence_hash == digest).order_by(ConsentEvent.seq)
    )


def _seqs(session: Session, digest: str | None) -> list[int]:
    if not digest:
        return []
    return list(
        session.scalars(
            select(ConsentEvent.seq)
            .where(ConsentEvent.evidence_hash == digest)
            .order_by(ConsentEvent.seq)
        )
    )


def _notice(
    session: Session, version: str | None, locale: str | None, event: ConsentEvent | None
) -> dict[str, Any] | None:
    if not version:
        return None
    query = select(NoticeVersion).where(NoticeVersion.version == version)
    if event is not None and event.notice_sha256:
        query = query.where(NoticeVersion.sha256 == event.notice_sha256)
    rows = session.scalars(query).all()
    row = next((n for n in rows if n.locale == locale), rows[0] if rows else None)
    if row is None:
        return {"version": version, "text": None, "sha256": None}
    return notices.record(row)
